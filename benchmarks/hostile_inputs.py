"""Hostile inputs: every case of the new-user report, and randomly generated data files, through the
command line (`taskshare.cli.main`, in process: exit status and printed lines) and the Python API.
Writes the table of cases and outcomes to BENCHMARKS.md (section hostile_inputs).

    python benchmarks/hostile_inputs.py [--random 40]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

from taskshare import Task, TaskshareError, TrainConfig, fit  # noqa: E402
from taskshare.cli import main  # noqa: E402
from taskshare.models import build_model  # noqa: E402


def _data(folder: Path, x=None, y=None, name="d.npz") -> str:
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4 if y is None else y
    x = rng.normal(size=(200, 6)).astype(np.float32) if x is None else x
    np.savez(folder / name, x=x, y=y)
    return str(folder / name)


def _transfer(folder: Path, **changes) -> dict:
    path = changes.pop("npz", None) or _data(folder)
    cfg = {"source": {"npz": path}, "target": {"npz": path}, "model": {"name": "mlp", "args": {"hidden": [8]}},
           "pretrain": {"train": {"epochs": 1, "min_steps": 0, "progress": False, "device": "cpu"}},
           "transfer": {"shots": [2], "strategies": ["linear_probe"],
                        "train": {"epochs": 1, "min_steps": 0, "progress": False, "device": "cpu"}},
           "output": str(folder / "out")}
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def _multitask(folder: Path, labels_a=None, **multitask) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    a = (x[:, 0] > 0).astype(np.float32) if labels_a is None else labels_a
    np.savez(folder / "m.npz", x=x, a=a, b=x[:, 1])
    return {"mode": "multitask", "data": {"npz": str(folder / "m.npz"), "tasks": [
        {"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression"}]},
        "model": {"name": "mlp", "args": {"hidden": [8]}},
        "multitask": {"modes": ["single", "hard"], "train": {"epochs": 1, "min_steps": 0, "progress": False}, **multitask},
        "output": str(folder / "out")}


def _own(folder: Path, label_cells=None, cell=None, **changes) -> dict:
    """A transfer config on CSV files (a built-in MLP pretrained on a source table); `label_cells`
    replaces the target's label column, `cell` one feature cell (row 3)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    label = [["a", "b", "c"][i % 3] for i in range(120)] if label_cells is None else label_cells
    rows = [f"{x[i, 0]:.3f},{x[i, 1]:.3f},{x[i, 2]:.3f},{label[i]}" for i in range(120)]
    if cell is not None:
        rows[2] = f"{cell},{rows[2].split(',', 1)[1]}"
    (folder / "t.csv").write_text("x1,x2,x3,y\n" + "\n".join(rows) + "\n")
    (folder / "s.csv").write_text("x1,x2,x3,y\n" + "\n".join(f"{v[0]:.3f},{v[1]:.3f},{v[2]:.3f},{int(v[0] > 0)}"
                                                           for v in rng.normal(size=(120, 3))) + "\n")
    cfg = _transfer(folder, source={"csv": str(folder / "s.csv"), "label": "y"},
                    target={"csv": str(folder / "t.csv"), "label": "y"})
    cfg.update(changes)
    return cfg


def own_cases(folder: Path):
    values = [f"{150 + 40 * v:.0f}" for v in np.random.default_rng(2).normal(size=120)]
    yield "own data: a numeric label of ~100 values", lambda: _own(folder, values)
    yield "own data: every label cell blank", lambda: _own(folder, [""] * 120)
    yield "own data: an infinite feature cell", lambda: _own(folder, cell="inf")
    yield "own data: shots [ALL]", lambda: _own(folder, transfer={"shots": ["ALL"]})
    yield "own data: shots [5.5]", lambda: _own(folder, transfer={"shots": [5.5]})
    yield "own data: test_fraction 1.5", lambda: _own(folder, test_fraction=1.5)
    yield "own data: augment: heavy", lambda: _own(folder, augment="heavy")

    def extra_class():
        cfg = _own(folder)
        (folder / "test.csv").write_text("x1,x2,x3,y\n0,0,0,a\n1,1,1,z\n")
        return {**cfg, "test": {"csv": str(folder / "test.csv"), "label": "y"}}
    yield "own data: a test file with a class the target lacks", extra_class

    def jsonl_typo():
        (folder / "t.jsonl").write_text("\n".join('{"text": "t%d", "topic": "%s"}' % (i, "ab"[i % 2]) for i in range(20)))
        return {"target": {"jsonl": str(folder / "t.jsonl"), "label": "topc"}, "source": {"npz": _data(folder)},
                "model": {"name": "mlp"}, "output": str(folder / "out")}
    yield "own data: a JSONL label field no record has", jsonl_typo


def cli_cases(folder: Path):
    rng = np.random.default_rng(1)
    x200 = rng.normal(size=(200, 6)).astype(np.float32)
    yield "output: /", lambda: _transfer(folder, output="/")
    (folder / "a_file").write_text("mine")
    yield "output: an existing file", lambda: _transfer(folder, output=str(folder / "a_file"))
    (folder / "theirs").mkdir()
    (folder / "theirs" / "notes.txt").write_text("mine")
    yield "output: a folder of other files", lambda: _transfer(folder, output=str(folder / "theirs"))
    yield "float labels 0.5 ... 3.5", lambda: _transfer(folder, npz=_data(folder, y=np.linspace(0.5, 3.5, 200)))
    yield "labels 10-13 in a 4-class file", lambda: _transfer(folder, npz=_data(folder, y=np.arange(200) % 4 + 10))
    yield "200 inputs, 150 labels", lambda: _transfer(folder, npz=_data(folder, x=x200, y=np.arange(150) % 4))
    yield "a label -2", lambda: _transfer(folder, npz=_data(folder, y=np.where(np.arange(200) % 4 == 3, -2, np.arange(200) % 4)))
    yield "empty arrays", lambda: _transfer(folder, npz=_data(folder, x=np.zeros((0, 6), np.float32), y=np.zeros(0, np.int64)))
    yield "object-dtype labels", lambda: _transfer(folder, npz=_data(folder, y=np.array(list(np.arange(200) % 4), dtype=object)))
    yield "text labels", lambda: _transfer(folder, npz=_data(folder, y=(np.arange(200) % 4).astype(str)))
    yield "NaN in the inputs", lambda: _transfer(folder, npz=_data(folder, x=np.where(x200 > 2.5, np.nan, x200)))
    yield "one-dimensional inputs", lambda: _transfer(folder, npz=_data(folder, x=x200[:, 0]))
    yield "model argument typo (hiden)", lambda: _transfer(folder, **{"model.args": {"hiden": [8]}})
    yield "model argument of the wrong kind (hidden: 5)", lambda: _transfer(folder, **{"model.args": {"hidden": 5}})
    yield "misspelled strategy (linear_prob)", lambda: _transfer(folder, **{"transfer.strategies": ["linear_prob"]})
    yield "target of another width", lambda: _transfer(folder, **{"target": {"npz": _data(folder, x=x200[:, :4], name="t.npz")}})
    yield "shots beyond the smallest class", lambda: _transfer(folder, **{"transfer.shots": [40]})
    yield "epochs: '3' (a string)", lambda: _transfer(folder, **{"transfer.train.epochs": "3"})
    yield "epochs: 0", lambda: _transfer(folder, **{"pretrain.train.epochs": 0})
    yield "unknown key", lambda: _transfer(folder, **{"transfer.colour": 1})
    yield "missing data file", lambda: _transfer(folder, npz=str(folder / "nowhere.npz"))
    (folder / "bad.npz").write_text("not a zip")
    yield "a text file named .npz", lambda: _transfer(folder, npz=str(folder / "bad.npz"))
    yield "multi-task: misspelled balancer", lambda: _multitask(folder, balancer="upgard")
    yield "multi-task: every label of a task unknown", lambda: _multitask(folder, labels_a=np.full(120, np.nan, np.float32))
    yield "multi-task: binary label 2", lambda: _multitask(folder, labels_a=np.full(120, 2.0, np.float32))


def api_cases():
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    quiet = {"epochs": 1, "min_steps": 0, "progress": False, "device": "cpu"}

    def fit_with(y, kind="multiclass", n=4, inputs=x):
        task = Task("t", kind, n if kind == "multiclass" else None)
        return lambda: fit(build_model("mlp", 5, task.out_dim, hidden=[4]), task, (inputs, y), None, TrainConfig(**quiet))
    yield "fit: labels out of range (4-7, 4 classes)", fit_with(np.arange(40) % 4 + 4)
    yield "fit: label -2", fit_with(np.full(40, -2))
    yield "fit: float labels", fit_with(np.linspace(0.5, 3.5, 40))
    yield "fit: every label unknown", fit_with(np.full(40, -1))
    yield "fit: 40 inputs, 30 labels", fit_with(np.arange(30) % 4)
    yield "fit: binary label 2", fit_with(np.full(40, 2.0), "binary")
    yield "fit: infinite regression target", fit_with(np.full(40, np.inf), "regression")
    yield "TrainConfig(epochs='3')", lambda: TrainConfig(epochs="3")
    yield "build_model('mlp', hiden=[8])", lambda: build_model("mlp", 5, 4, hiden=[8])
    yield "Task('t', 'multiclass', num_classes=1)", lambda: Task("t", "multiclass", num_classes=1)


def run_cli(folder: Path, cfg: dict) -> tuple[str, str]:
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            status = main(["run", str(folder / "c.yaml")])
    except Exception:                                # a traceback: exactly what must never happen
        return "traceback", traceback.format_exc(limit=1).strip().splitlines()[-1]
    errors = [line for line in out.getvalue().splitlines() if line.startswith("error:")]
    if status == 2 and len(errors) == 1:
        return "exit 2", errors[0][len("error: "):]
    return f"exit {status}", "(no message)" if not errors else " / ".join(errors)


def run_api(call) -> tuple[str, str]:
    try:
        call()
    except TaskshareError as exc:
        return type(exc).__name__, str(exc)
    except Exception as exc:
        return "traceback", f"{type(exc).__name__}: {exc}"
    return "accepted", "(no error)"


CORRUPTIONS = ("3 labels short", "3 labels long", "a label 0.5", "a label -2", "a label 7", "a label NaN",
               "labels as text", "an input NaN", "no examples")


def _random_file(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A valid file (20-60 examples, classes 0-3, each at least 5 times) with 0-2 corruptions."""
    n = int(rng.integers(20, 61))
    y = np.concatenate([np.repeat(np.arange(4), 5), rng.integers(0, 4, n - 20)])
    x = rng.normal(size=(n, 6)).astype(np.float32)
    chosen = list(rng.choice(CORRUPTIONS, int(rng.choice([0, 1, 2])), replace=False))
    i = int(rng.integers(0, n))
    for c in chosen:
        if c == "3 labels short":
            y = y[:-3]
        elif c == "3 labels long":
            y = np.concatenate([y, y[:3]])
        elif (c.startswith("a label") or c == "an input NaN") and len(y) and len(x):
            if c == "an input NaN":
                x[i % len(x), 0] = np.nan
            elif y.dtype.kind in "iuf":
                y = y.astype(np.float64)
                y[i % len(y)] = float(c.split()[-1])
        elif c == "labels as text":
            y = y.astype(str)
        elif c == "no examples":
            x, y = x[:0], y[:0]
    return x, y, chosen


def main_(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--random", type=int, default=40, help="randomly generated data files run through the CLI")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import logging
    logging.disable(logging.CRITICAL)
    rows, tracebacks = [], 0
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = str(Path(tmp_dir).resolve())
        for i, (name, make) in enumerate([*cli_cases(Path(tmp)), *own_cases(Path(tmp))]):
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            cfg = make()
            outcome, message = run_cli(folder, cfg)
            rows.append(["CLI", name, outcome, message])
        for name, call in api_cases():
            outcome, message = run_api(call)
            rows.append(["Python", name, outcome, message])
        rng = np.random.default_rng(args.seed)
        counts: dict[str, int] = {}
        for i in range(args.random):
            folder = Path(tmp) / f"random{i}"
            folder.mkdir()
            x, y, chosen = _random_file(rng)
            outcome, message = run_cli(folder, _transfer(folder, npz=_data(folder, x=x, y=y)))
            kind = f"{'corrupted' if chosen else 'valid'}, {outcome}"
            counts[kind] = counts.get(kind, 0) + 1
            if outcome not in ("exit 0", "exit 2") or (outcome == "exit 0") == bool(chosen):
                rows.append(["CLI", f"random file {i} ({', '.join(chosen) or 'valid'})", outcome, message])
    tracebacks = sum(r[2] == "traceback" for r in rows)
    silent = [r for r in rows if r[2] in ("accepted", "exit 0")]
    for row in rows:                                  # no machine's temporary path in the table
        row[3:] = [row[3].replace(tmp + "/", "").replace(tmp, ".")]
    lines = [f"Every input of the new-user report, through the command line (`taskshare run`, in process: exit status "
             f"and the lines printed) and the Python API ({machine()}; `python benchmarks/hostile_inputs.py "
             f"--random {args.random} --seed {args.seed}`). Each failure should be one line naming the problem.", "",
             "| via | case | outcome | message |", "|---|---|---|---|"]
    for via, name, outcome, message in rows:
        shown = message if len(message) <= 170 else message[:167] + "..."
        lines.append(f"| {via} | {name} | {outcome} | {shown.replace('|', '/')} |")
    lines += ["", f"{len(rows)} listed cases: {tracebacks} tracebacks, {len(silent)} accepted without an error. "
              f"{args.random} random data files (a valid file of 20-60 examples with 0-2 of: "
              f"{', '.join(CORRUPTIONS)}): " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
              + " (a corrupted file accepted, or a valid one refused, would be listed above)."]
    publish("hostile_inputs", lines)


if __name__ == "__main__":
    main_()
