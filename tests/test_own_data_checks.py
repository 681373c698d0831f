"""Own-data runs check what can be checked before anything trains: the config's values before any
file is read, the transfer target before the source is pretrained; multi-task tables train
regression labels, with the encoding fitted on the training rows."""
import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import taskshare
from taskshare.cli import main
from taskshare.errors import ConfigError, TaskshareError
from taskshare.experiments.own import load_own

from .data.own_files import table_csv

FAST = {"epochs": 2, "min_steps": 0, "batch_size": 16, "progress": False, "device": "cpu"}


def transfer_config(tmp_path: Path, target: dict | None = None, **extra) -> dict:
    source = table_csv(tmp_path / "source.csv", n=60, seed=1)
    target = target or {"csv": str(table_csv(tmp_path / "target.csv", n=60, seed=2)), "label": "big"}
    return {"source": {"csv": str(source), "label": "big"}, "target": target,
            "model": {"name": "mlp", "args": {"hidden": [8]}}, "output": str(tmp_path / "run"),
            "transfer": {"shots": [5], "strategies": ["linear_probe"], "train": FAST}, **extra}


@pytest.mark.parametrize("change, message", [
    ({"transfer": {"shots": ["ALL"]}}, "transfer.shots has 'ALL'; expected positive integers or 'all'"),
    ({"transfer": {"shots": [5.5]}}, "transfer.shots has 5.5"),
    ({"transfer": {"shots": [0]}}, "transfer.shots has 0"),
    ({"transfer": {"strategies": ["linear_prob"]}}, "linear_prob"),
    ({"augment": "heavy"}, "augment = 'heavy'"),
    ({"test_fraction": 1.5}, "test_fraction = 1.5; expected a fraction"),
    ({"test_fraction": 0}, "test_fraction = 0"),
])
def test_config_values_are_checked_before_any_file_is_read(tmp_path, change, message):
    raw = {"target": {"csv": "nowhere.csv", "label": "y"}, "source": {"csv": "nowhere.csv"}, "model": {"name": "mlp"}}
    for key, value in change.items():
        raw[key] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_own(raw)


@pytest.fixture
def no_pretraining(monkeypatch):
    import taskshare.experiments.own_transfer as own_transfer
    monkeypatch.setattr(own_transfer, "pretrain_builtin",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("the source was pretrained")))


def _refused(tmp_path, capsys, config: dict) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path)]) == 2
    return " ".join(capsys.readouterr().out.split())


def test_test_table_with_an_extra_class_stops_before_pretraining(tmp_path, capsys, no_pretraining):
    test = tmp_path / "test.csv"
    test.write_text(table_csv(tmp_path / "t.csv", n=20, seed=3).read_text().replace(",yes,", ",huge,", 1))
    text = _refused(tmp_path, capsys, transfer_config(tmp_path, test={"csv": str(test), "label": "big"}))
    assert "['huge']" in text


def test_shots_larger_than_a_class_stop_before_pretraining(tmp_path, capsys, no_pretraining):
    config = transfer_config(tmp_path)
    config["transfer"]["shots"] = [40]
    assert "shots=40 needs 80" in _refused(tmp_path, capsys, config)


def test_blank_label_column_stops_before_pretraining(tmp_path, capsys, no_pretraining):
    target = table_csv(tmp_path / "target.csv", n=40, seed=2)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(line.rsplit(",", 2)[0] + ",," for line in target.read_text().splitlines()[1:]))
    blank.write_text("x1,x2,colour,big,shade\n" + blank.read_text())
    text = _refused(tmp_path, capsys, transfer_config(tmp_path, target={"csv": str(blank), "label": "big"}))
    assert "label column 'big' has no known value" in text


def test_regression_target_in_transfer_names_the_mode_that_trains_it(tmp_path, capsys, no_pretraining):
    target = {"csv": str(table_csv(tmp_path / "target.csv", n=40)), "label": "x2", "kind": "regression"}
    text = _refused(tmp_path, capsys, transfer_config(tmp_path, target=target))
    assert "'x2' is kind: regression" in text and "mode: multitask" in text


def regression_csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    lines = ["a,b,c,value,sign"]
    for i in range(n):
        sign = ("pos" if x[i, 1] > 0 else "neg") if i % 3 else ""
        lines.append(f"{x[i, 0]:.4f},{x[i, 1]:.4f},{x[i, 2]:.4f},{300 + 50 * (2 * x[i, 0] - x[i, 2]):.4f},{sign}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_multitask_table_trains_a_regression_label_and_predict_writes_its_value(tmp_path):
    """A value in the hundreds beside a class label, a third of the class labels unknown."""
    data = regression_csv(tmp_path / "r.csv")
    config = {"mode": "multitask", "data": {"csv": str(data), "labels": ["value", "sign"], "kind": {"value": "regression"}},
              "model": {"name": "mlp", "args": {"hidden": [32]}}, "output": str(tmp_path / "mt"),
              "multitask": {"modes": ["single", "hard"], "train": {**FAST, "epochs": 20, "batch_size": 32, "lr": 0.01}}}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "mt.yaml")]) == 0
    run = taskshare.load(tmp_path / "mt")
    assert [t.kind for t in run.tasks] == ["regression", "multiclass"]
    assert run.record["test"]["value"]["r2"] > 0.8
    # the encoding comes from the training rows: their mean, not every row's
    from taskshare.experiments.multitask import split_rows
    from taskshare.experiments.specs import MultiTaskData
    train = split_rows(200, MultiTaskData(val_fraction=0.15, test_fraction=0.2, seed=0))[0]
    a = np.loadtxt(data, delimiter=",", skiprows=1, usecols=0)
    mean = run.record["input"]["encoding"]["columns"][0]["mean"]
    assert mean == pytest.approx(a[train].mean(), abs=1e-6) and mean != pytest.approx(a.mean(), abs=1e-6)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "mt"), str(data), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert "value_probability" not in rows[0]
    truth = np.loadtxt(data, delimiter=",", skiprows=1, usecols=3)
    predicted = np.array([float(r["value"]) for r in rows])
    # values in the hundreds, learnt in 20 epochs (trained on a standard scale) and given back in the file's units
    assert np.abs(predicted - truth).mean() < 0.3 * truth.std()
    assert main(["export", str(tmp_path / "mt"), "--format", "torchscript"]) == 0
    exported = torch.jit.load(str(tmp_path / "mt" / "model.torchscript.pt"))
    with torch.no_grad():
        value = exported(run.encode(pd.read_csv(data).iloc[:5]))[0]
    assert np.allclose(value.squeeze(1).numpy(), predicted[:5], atol=1e-3)   # the value, not a softmax of it
    results = yaml.safe_load((tmp_path / "mt" / "multitask_results.json").read_text())["results"]
    assert all(r["test"]["value"]["mae"] > 1 for r in results)   # the report's errors in those units too


def test_predict_reads_a_blank_text_cell_as_training_does(tmp_path):
    from taskshare.data.sources import read_source
    from taskshare.serve.predict import read_inputs
    (tmp_path / "t.csv").write_text('text,label\nhello,a\n,b\n"",a\n')
    trained = read_source({"csv": str(tmp_path / "t.csv"), "label": "label"}).inputs
    run = SimpleNamespace(kind="text", input={"encoding": {"text_column": "text"}})
    assert read_inputs(run, tmp_path / "t.csv")[1] == trained == ["hello", "", ""]
    (tmp_path / "t.jsonl").write_text('{"text": "hi"}\n{"text": null}\n{"other": 1}\n')
    assert read_inputs(run, tmp_path / "t.jsonl")[1] == ["hi", "", ""]


def test_target_without_the_source_columns_stops_before_the_source_trains(tmp_path, capsys, monkeypatch):
    import taskshare.experiments.own as own
    monkeypatch.setattr(own, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("the source was trained")))
    target = tmp_path / "other.csv"
    target.write_text("u,v,big\n" + "".join(f"{i},{i % 3},{['yes', 'no'][i % 2]}\n" for i in range(40)))
    text = _refused(tmp_path, capsys, transfer_config(tmp_path, target={"csv": str(target), "label": "big"}))
    assert "lacks 4 of the source's feature columns (first 'x1')" in text


def test_a_test_source_reads_its_labels_as_the_target_declared(tmp_path):
    """Ids 100..159, four rows each, declared classes on the target: read alone, the test file's ids
    stopped as a measurement."""
    from taskshare.data.sources import read_source
    from taskshare.experiments.own import hold_out
    rows = lambda n: "x,y\n" + "".join(f"{i * 0.1:.1f},{100 + i % 60}\n" for i in range(n))
    (tmp_path / "train.csv").write_text(rows(240))
    (tmp_path / "test.csv").write_text(rows(120))
    data = read_source({"csv": str(tmp_path / "train.csv"), "label": "y", "kind": "classification"})
    _, test = hold_out(data, {"csv": str(tmp_path / "test.csv"), "label": "y"}, 0.2, 0, (32, 32), "y")
    assert test.kind_of("y") == "classification" and test.labels["y"][:3].tolist() == [0, 1, 2]
    with pytest.raises(Exception, match="a measurement rather than classes"):   # its own kind still wins
        hold_out(data, {"csv": str(tmp_path / "test.csv"), "label": "y", "kind": {}}, 0.2, 0, (32, 32), "y")


def multitask_table(path: Path, label: str, n: int = 200, stray: int = 0, seed: int = 0) -> Path:
    """Features a, b, col; a class label `label` and a regression label `val`; `stray` cells of a hold `?`."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    col = rng.choice(["red", "green"], size=n)
    lines = [f"a,b,col,{label},val"]
    for i in range(n):
        cell = "?" if i < stray else f"{a[i]:.3f}"
        lines.append(f"{cell},{b[i]:.3f},{col[i]},{'big' if a[i] > 0 else 'small'},{100 + 20 * b[i] + 5 * a[i]:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def multitask_run(tmp_path: Path, label: str, stray: int = 0, modes=("single", "hard")) -> Path:
    data = multitask_table(tmp_path / "t.csv", label, stray=stray)
    config = {"mode": "multitask", "data": {"csv": str(data), "labels": {label: "classification", "val": "regression"}},
              "model": {"name": "mlp", "args": {"hidden": [16]}}, "output": str(tmp_path / "mt"),
              "multitask": {"modes": list(modes), "train": {**FAST, "epochs": 3}}}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "mt.yaml")]) == 0
    return tmp_path / "mt"


def test_a_label_named_like_a_module_attribute_trains_saves_and_predicts(tmp_path):
    """`half` is an nn.Module method: as a label column it crashed building the heads (and towers)."""
    run_dir = multitask_run(tmp_path, "half", modes=("single", "hard", "soft", "cross_stitch"))
    run = taskshare.load(run_dir)
    assert [t.name for t in run.tasks] == ["half", "val"] and "half" in run.model.heads
    assert "heads.task:half.weight" in run.model.state_dict() and "heads.val.weight" in run.model.state_dict()
    assert main(["predict", str(run_dir), str(tmp_path / "t.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 200 and {r["half"] for r in rows} <= {"big", "small"}
    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0


def test_predict_reads_a_token_training_read_as_unknown_as_unknown(tmp_path, caplog, capsys):
    """1% `?` in column a, read as unknown in training; alone in a one-row file, predict refused it."""
    run_dir = multitask_run(tmp_path, "size", stray=2, modes=("hard",))
    (tmp_path / "one.csv").write_text("a,b,col\n?,0.1,red\n")
    with caplog.at_level("WARNING", logger="taskshare"):
        assert main(["predict", str(run_dir), str(tmp_path / "one.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    row = next(csv.DictReader((tmp_path / "p.csv").open()))
    assert row["size"] in ("big", "small") and np.isfinite(float(row["val"]))
    assert "'a'" in caplog.text and "['?']" in caplog.text
    run = taskshare.load(run_dir)      # imputed as training did: the training mean, 0 once scaled
    mean = run.record["input"]["encoding"]["columns"][0]["mean"]
    assert np.allclose(run.encode(pd.DataFrame({"a": ["?"], "b": [0.1], "col": ["red"]})).numpy(),
                       run.encode(pd.DataFrame({"a": [mean], "b": [0.1], "col": ["red"]})).numpy(), atol=1e-6)
    (tmp_path / "two.csv").write_text("a,b,col\nhigh,0.1,red\n")             # never seen in training: refused
    assert main(["predict", str(run_dir), str(tmp_path / "two.csv"), "--out", str(tmp_path / "q.csv")]) != 0
    assert "column 'a' was numeric in training but holds text here" in capsys.readouterr().out


def test_ordinary_task_names_keep_their_state_dict_keys():
    from taskshare.models import HardSharing, SoftSharing
    from taskshare.tasks import Task
    tasks = [Task("price", "regression"), Task("colour", "multiclass", num_classes=3)]
    hard = HardSharing(torch.nn.Linear(4, 8), tasks, torch.zeros(2, 4))
    assert sorted(hard.state_dict()) == sorted(["trunk.weight", "trunk.bias", "heads.price.weight", "heads.price.bias",
                                                "heads.colour.weight", "heads.colour.bias"])
    soft = SoftSharing(torch.nn.Linear(4, 8), tasks, torch.zeros(2, 4))
    assert {k.split(".")[1] for k in soft.state_dict() if k.startswith("towers.")} == {"price", "colour"}
    assert list(hard.heads) == list(hard.heads.keys()) == ["price", "colour"]
    named = HardSharing(torch.nn.Linear(4, 8), [Task("name", "regression"), Task("key", "regression")], torch.zeros(2, 4))
    assert {k.split(".")[1] for k in named.state_dict() if k.startswith("heads.")} == {"name", "key"}
    with pytest.raises(TaskshareError, match="'task:half' is reserved"):
        HardSharing(torch.nn.Linear(4, 8), [Task("task:half", "regression")], torch.zeros(2, 4))


def test_the_kept_model_is_the_tables_hard_run(tmp_path):
    run_dir = multitask_run(tmp_path, "size")
    saved = json.loads((run_dir / "run.json").read_text())["test"]
    hard = next(r for r in json.loads((run_dir / "multitask_results.json").read_text())["results"] if r["mode"] == "hard")
    for task in ("size", "val"):
        for metric, value in hard["test"][task].items():
            assert saved[task][metric] == pytest.approx(value, rel=1e-4, abs=1e-6), (task, metric)
    assert "the table's 'hard' run" in json.loads((run_dir / "run.json").read_text())["kept"]["why"]
