import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskshare.cli import main


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    names = {r["strategy"].split(" -> ")[0] for r in results}
    assert {"scratch", "linear_probe", "finetune", "lp_ft", "auto"} <= names
    acc = {(r["strategy"].split(" -> ")[0], r["labels_per_class"]): r["test"]["accuracy"] for r in results}
    # five balanced digit classes: a constant predictor scores about 0.2
    assert all(v > 0.6 for (name, shot), v in acc.items() if shot == "all"), acc
    assert all(acc[(s, 5)] > 0.35 for s in ("linear_probe", "finetune", "lp_ft", "auto")), acc
    assert acc[("linear_probe", 5)] > acc[("scratch", 5)] + 0.1, acc    # 5 labels per class: transfer helps
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "scratch" in html
    assert (tmp_path / "pretrained.safetensors").exists() and (tmp_path / "pretrained.json").exists()
    out = capsys.readouterr().out
    assert "transfer A -> B" in out and "one model per task vs sharing" in out
    mt = json.loads((tmp_path / "multitask_results.json").read_text())["results"]
    assert [r["mode"] for r in mt] == ["single", "hard", "soft", "cross_stitch"]
    assert mt[0]["delta_m"] == 0.0 and all(r["delta_m"] is not None for r in mt)
    assert "delta_m" in (tmp_path / "multitask_report.md").read_text()
    # the second regime, a run of its own inside: every label known, a small trunk; each says why
    small = json.loads((tmp_path / "multitask_small_trunk" / "multitask_results.json").read_text())
    assert [r["mode"] for r in small["results"]] == ["single", "hard"]
    assert small["config"]["model"]["args"]["channels"] == [2, 4, 4] and small["config"]["data"]["missing"] == 0
    notes = [small["config"]["note"], json.loads((tmp_path / "multitask_results.json").read_text())["config"]["note"]]
    assert all(n and " ".join(n.split()) in " ".join(out.split()) for n in notes)
    assert notes[0] in (tmp_path / "multitask_small_trunk" / "multitask_report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for section in ("Transfer gain over scratch", "Learning curves", "Multi-task: one model per task vs sharing",
                    "vs sharing (multitask_small_trunk)"):
        assert section in html
    assert_well_formed(html)
    (tmp_path / "report.html").unlink()
    assert main(["report", str(tmp_path)]) == 0                  # rebuilt from the saved results alone
    assert "Learning curves" in (tmp_path / "report.html").read_text()


def assert_well_formed(page: str) -> None:
    """Every opened element is closed in order (void elements aside), one svg per plot, no script."""
    from html.parser import HTMLParser
    void = {"meta", "br", "img", "hr", "input", "link", "circle", "line", "rect", "polyline", "path"}

    class Check(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack = []

        def handle_starttag(self, tag, attrs):
            if tag not in void:
                self.stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            pass

        def handle_endtag(self, tag):
            if tag in void:
                return
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
            self.stack.pop()

    checker = Check()
    checker.feed(page)
    assert checker.stack == [], f"unclosed: {checker.stack}"
    assert "<script" not in page and page.count("<svg") >= 2


def test_report_command_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no saved results" in " ".join(capsys.readouterr().out.split())
    (tmp_path / "results.json").write_text('{"results": [')
    assert main(["report", str(tmp_path)]) == 2
    assert "is not valid JSON" in " ".join(capsys.readouterr().out.split())


def _npz_config(tmp_path, **transfer):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 2, (6, 10))
    y = np.repeat(np.arange(6), 60)
    x = centers[y] + rng.normal(size=(len(y), 10))
    np.savez(tmp_path / "d.npz", x=x.astype(np.float32), y=y)
    cfg = {"source": {"npz": str(tmp_path / "d.npz"), "classes": [0, 1, 2]},
           "target": {"npz": str(tmp_path / "d.npz"), "classes": [3, 4, 5]},
           "model": {"name": "mlp", "args": {"hidden": [16, 16]}},
           "pretrain": {"train": {"epochs": 3, "progress": False}},
           "transfer": {"shots": [5], "seeds": [0], "strategies": ["linear_probe"],
                        "train": {"epochs": 2}, **transfer},
           "output": str(tmp_path / "out")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_pretrain_then_transfer_from_npz(tmp_path):
    path = _npz_config(tmp_path)
    assert main(["pretrain", str(path)]) == 0
    assert main(["transfer", str(path)]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert [r["strategy"] for r in rows] == ["scratch", "linear_probe"]  # scratch added as the baseline


@pytest.mark.parametrize("transfer,message", [
    ({"shots": [500]}, "shots=500 labels per class"),
    ({"strategies": ["nope"]}, "unknown strategy 'nope'"),
    ({"colour": 1}, "unknown key 'colour'"),
])
def test_bad_configs_exit_2_with_message(tmp_path, capsys, transfer, message):
    assert main(["run", str(_npz_config(tmp_path, **transfer))]) == 2
    out = capsys.readouterr().out
    assert "error:" in out and message in out.replace("\n", " ")


def test_strategies_lists_registry_one_line_each_and_more_on_verbose(capsys):
    from taskshare.transfer import STRATEGIES
    assert main(["strategies"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == list(STRATEGIES.names())   # the README: one line each
    assert all(len(line) <= 80 for line in lines) and "--verbose" in lines[-1]
    assert main(["strategies", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) > len(STRATEGIES.names()) and "Kumar et al. 2022" in out and "issue 13" in out


@pytest.mark.slow
def test_transferred_models_are_saved_and_reload(tmp_path):
    import torch
    from taskshare import TrunkHead
    from taskshare.models import build_model, transfer_model
    from taskshare.tasks import Task
    from taskshare.train import load_into, read_meta
    path = _npz_config(tmp_path, strategies=["linear_probe", "lp_ft"])
    assert main(["run", str(path)]) == 0
    saved = tmp_path / "out" / "models" / "k5_seed0_best.safetensors"
    meta = read_meta(saved)
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    best = max(r["val_score"] for r in rows)
    tied = [r["strategy"] for r in rows if r["val_score"] == best]
    assert meta["strategy"] == ([t for t in tied if t != "scratch"] or tied)[0]   # scratch yields a tie
    net = transfer_model(build_model("mlp", 10, 3, hidden=[16, 16]), Task("b", num_classes=3), example=torch.zeros(2, 10))
    load_into(net, saved)


def _mtl_files(tmp_path, per_task: bool):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    a = (x[:, 0] > 0).astype(np.int64)
    b = (x[:, 1] + x[:, 2]).astype(np.float32)
    b[:100] = np.nan  # unknown values
    if per_task:
        np.savez(tmp_path / "a.npz", x=x[:200], y=a[:200])
        np.savez(tmp_path / "b.npz", x=x[100:], y=b[100:])
        tasks = [{"name": "a", "kind": "multiclass", "num_classes": 2, "npz": str(tmp_path / "a.npz")},
                 {"name": "b", "kind": "regression", "npz": str(tmp_path / "b.npz")}]
        data = {"tasks": tasks}
    else:
        np.savez(tmp_path / "m.npz", x=x, label_a=a, b=b)
        data = {"npz": str(tmp_path / "m.npz"), "tasks": [
            {"name": "a", "kind": "multiclass", "num_classes": 2, "key": "label_a"}, {"name": "b", "kind": "regression"}]}
    cfg = {"mode": "multitask", "data": data, "model": {"name": "mlp", "args": {"hidden": [16, 16]}},
           "multitask": {"modes": ["single", "hard", "soft", "cross_stitch"], "sampler": "round_robin",
                         "train": {"epochs": 3, "min_steps": 20, "progress": False}},
           "output": str(tmp_path / "mt")}
    path = tmp_path / "mt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("per_task", [False, True])
def test_multitask_run_from_yaml(tmp_path, per_task):
    assert main(["run", str(_mtl_files(tmp_path, per_task))]) == 0
    rows = json.loads((tmp_path / "mt" / "multitask_results.json").read_text())["results"]
    assert {r["mode"] for r in rows} == {"single", "hard", "soft", "cross_stitch"}
    for r in rows:
        assert set(r["main"]) == {"a", "b"} and set(r["test"]["b"]) == {"r2", "mae", "rmse"}


def test_multitask_config_errors(tmp_path, capsys):
    path = _mtl_files(tmp_path, False)
    cfg = yaml.safe_load(path.read_text())
    cfg["multitask"]["modes"] = ["hard", "medium"]
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 2
    assert "multitask.modes has 'medium'" in capsys.readouterr().out


@pytest.mark.slow
def test_multitask_yaml_with_a_balancing_method(tmp_path):
    path = _mtl_files(tmp_path, False)
    cfg = yaml.safe_load(path.read_text())
    cfg["multitask"]["modes"] = ["single", "hard"]
    cfg["multitask"]["balancer"] = {"name": "dwa", "temperature": 1.5}
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    rows = json.loads((tmp_path / "mt" / "multitask_results.json").read_text())
    assert rows["config"]["multitask"]["balancer"] == {"name": "dwa", "temperature": 1.5}


def _domains(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    centers = rng.normal(0, 2.5, (3, 6))
    x = (centers[y] + rng.normal(0, 1, (300, 6))).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x[:200], y=y[:200])
    np.savez(tmp_path / "t.npz", x=x[200:] * 1.5 + 1.0, y=y[200:])


@pytest.mark.slow
def test_adapt_run_from_yaml_reports_distance_and_target_accuracy(tmp_path, capsys):
    _domains(tmp_path)
    cfg = {"mode": "adapt", "task": {"name": "c", "kind": "multiclass", "num_classes": 3},
           "data": {"source": {"npz": str(tmp_path / "s.npz")}, "target": {"npz": str(tmp_path / "t.npz")}},
           "model": {"name": "mlp", "args": {"hidden": [16]}},
           "adapt": {"methods": ["source_only", "dann", "coral"], "options": {"dann": {"hidden": 32}},
                     "train": {"epochs": 10, "lr": 1e-2, "min_steps": 0, "progress": False, "device": "cpu"}},
           "output": str(tmp_path / "out")}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "a.yaml")]) == 0
    out = capsys.readouterr().out
    assert "how different are these domains" in out
    result = json.loads((tmp_path / "out" / "adapt_results.json").read_text())
    assert [r["method"] for r in result["rows"]] == ["source_only", "dann", "coral"]
    # separable blobs, the target scaled and shifted: every method learns the source and carries over
    # (the largest target class is 36%: a constant predictor's score), and the distance sees the shift
    assert all(r["source_val"] > 0.9 and r["target"] > 0.8 for r in result["rows"]), result["rows"]
    assert 0.5 < result["proxy_a_distance_raw"] <= 2 and result["chance"] == pytest.approx(1 / 3)
    cfg["adapt"]["methods"] = ["dan", "danny"]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "b.yaml")]) == 2
    assert "adapt.methods has 'danny'" in capsys.readouterr().out


@pytest.mark.slow
def test_advise_on_the_demo_data(tmp_path, capsys):
    assert main(["advise", "--quick", "--out", str(tmp_path)]) == 0
    advice = json.loads((tmp_path / "advice.json").read_text())
    assert [a["labels_per_class"] for a in advice] == [5, "all"]
    first = advice[0]["advice"]
    assert advice[0]["strategy"] in ("linear_probe", {"name": "last_k", "k": 1}, {"name": "last_k", "k": 2})
    assert first["candidates"][0]["logme"] > first["random_logme"]
    assert "advice before training" in capsys.readouterr().out


@pytest.mark.slow
def test_run_resume_restores_finished_runs_and_gives_the_same_results(tmp_path, caplog):
    import logging
    cfg = {"mode": "multitask", "data": {"builtin": "digit_scenes", "scenes": 300},
           "multitask": {"modes": ["single", "hard"], "train": {"epochs": 2, "min_steps": 0, "progress": False,
                                                                "device": "cpu"}},
           "output": str(tmp_path / "out")}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "mt.yaml"), "--resume"]) == 0
    first = json.loads((tmp_path / "out" / "multitask_results.json").read_text())["results"]
    runs = sorted(p.parent.relative_to(tmp_path / "out" / "checkpoints").as_posix()
                  for p in (tmp_path / "out" / "checkpoints").rglob("step-*.pt"))
    assert "seed0/hard" in runs and any(r.startswith("seed0/single/") for r in runs)
    with caplog.at_level(logging.INFO, logger="taskshare"):
        assert main(["run", str(tmp_path / "mt.yaml"), "--resume"]) == 0   # everything finished: restored
    assert caplog.text.count("resumed from") == len(set(runs))
    again = json.loads((tmp_path / "out" / "multitask_results.json").read_text())["results"]
    assert [r["main"] for r in again] == [r["main"] for r in first]


@pytest.mark.slow
def test_run_under_two_processes_gives_the_one_process_results_and_rank0_alone_writes(tmp_path):
    import tempfile

    from tests.train.ddp_worker import spawn, worker_cli
    path = _npz_config(tmp_path, shots=[5, 20], strategies=["linear_probe", "lp_ft"])
    cfg = yaml.safe_load(path.read_text())
    for part in ("pretrain", "transfer"):
        cfg[part]["train"]["device"] = "cpu"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "one")]) == 0
    scratch_before = set(Path(tempfile.gettempdir()).glob("taskshare-rank-*"))
    spawn(worker_cli, (2, str(tmp_path / "store"), ["run", str(path), "--out", str(tmp_path / "two")], str(tmp_path)))
    assert [(tmp_path / f"cli{r}.txt").read_text() for r in (0, 1)] == ["0", "0"]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["results"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["results"]
    assert [(r["strategy"], r["labels_per_class"]) for r in one] == [(r["strategy"], r["labels_per_class"]) for r in two]
    for a, b in zip(one, two):       # the same models up to float rounding: the same test accuracy
        assert abs(a["test"]["accuracy"] - b["test"]["accuracy"]) < 1e-9, (a["strategy"], a["labels_per_class"])
    assert set(Path(tempfile.gettempdir()).glob("taskshare-rank-*")) == scratch_before   # rank 1's scratch removed


@pytest.mark.slow
def test_results_follow_the_config_seeds_not_the_global_random_state(tmp_path):
    import torch
    path = _npz_config(tmp_path, strategies=["linear_probe", "finetune"])
    assert main(["pretrain", str(path)]) == 0
    accuracies = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        assert main(["transfer", str(path), "--out", str(tmp_path / f"t{global_seed}"),
                     "--pretrained", str(tmp_path / "out" / "pretrained.safetensors")]) == 0
        rows = json.loads((tmp_path / f"t{global_seed}" / "results.json").read_text())["results"]
        accuracies.append([r["test"]["accuracy"] for r in rows])
    assert accuracies[0] == accuracies[1]


@pytest.mark.slow
def test_run_stopped_by_sigterm_resumes_to_the_results_of_an_uninterrupted_run(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    cfg = {"mode": "multitask", "data": {"builtin": "digit_scenes", "scenes": 300},
           "multitask": {"modes": ["single", "hard"], "train": {"epochs": 3, "min_steps": 0, "progress": False,
                                                                "device": "cpu", "checkpoint_every": 1}},
           "output": str(tmp_path / "out")}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(cfg))
    command = [sys.executable, "-m", "taskshare.cli", "run", str(tmp_path / "mt.yaml")]
    subprocess.run(command + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(command + ["--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "out" / "checkpoints").glob("seed0/single/*/step-*.pt")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143                      # stopped in the middle, a checkpoint saved
    assert not (tmp_path / "out" / "multitask_results.json").exists()
    subprocess.run(command + ["--resume"], check=True, capture_output=True, timeout=300)
    whole = json.loads((tmp_path / "whole" / "multitask_results.json").read_text())["results"]
    resumed = json.loads((tmp_path / "out" / "multitask_results.json").read_text())["results"]
    assert [r["main"] for r in resumed] == [r["main"] for r in whole]


@pytest.mark.slow
def test_torchrun_two_processes_run_the_readme_command(tmp_path):
    """`torchrun ... -m taskshare.cli run config.yaml`, as the README's "Scaling out" says (gloo, CPU):
    rank 0 writes the results, and they are the one-process results."""
    import os
    import subprocess
    import sys
    cfg = {"mode": "multitask", "data": {"builtin": "digit_scenes", "scenes": 300},
           "model": {"name": "mlp", "args": {"hidden": [32]}},
           "multitask": {"modes": ["single", "hard"], "balancer": "famo",
                         "train": {"epochs": 2, "min_steps": 0, "progress": False, "device": "cpu"}},
           "output": str(tmp_path / "out")}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "taskshare.cli", "run", str(tmp_path / "mt.yaml"), "--out",
                    str(tmp_path / "one")], check=True, capture_output=True, timeout=300, env=env)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "taskshare.cli", "run", str(tmp_path / "mt.yaml")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "multitask_results.json").read_text())["results"]
    two = json.loads((tmp_path / "out" / "multitask_results.json").read_text())["results"]
    assert [r["mode"] for r in one] == [r["mode"] for r in two] == ["single", "hard"]
    for a, b in zip(one, two):
        assert a["main"].keys() == b["main"].keys() and a["main"]
        for task, value in a["main"].items():
            assert abs(value - b["main"][task]) < 1e-6, (a["mode"], task, value, b["main"][task])


def test_advise_after_the_demo_writes_beside_it_and_leaves_the_demo_alone(tmp_path, monkeypatch):
    """The README's order, `taskshare demo` then `taskshare advise --quick`: both defaulted to runs/demo,
    so advise was refused, and with --overwrite it deleted the demo's reports."""
    import taskshare.experiments.advise as advise_mode
    from taskshare.experiments.outputs import MARKER
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "runs" / "demo"
    demo.mkdir(parents=True)
    (demo / MARKER).write_text("{}")
    (demo / "report.html").write_text("the demo's report")
    seen = []
    monkeypatch.setattr(advise_mode, "run_advise", lambda config, out, *a: seen.append(out) or [])
    monkeypatch.setattr(advise_mode, "rebuild_report", lambda out: None)
    assert main(["advise", "--quick"]) == 0
    assert seen == [Path("runs/demo_advice")] and (Path("runs/demo_advice") / MARKER).is_file()
    assert (demo / "report.html").read_text() == "the demo's report"
    assert main(["advise", "--quick", "--out", "elsewhere"]) == 0 and seen[-1] == Path("elsewhere")


def test_adapt_with_a_csv_domain_says_it_takes_npz_files(tmp_path, capsys):
    cfg = {"mode": "adapt", "data": {"source": {"csv": "s.csv", "label": "y"}, "target": {"npz": "t.npz"}},
           "output": str(tmp_path / "out")}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "a.yaml")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "config.data.source" in out and "'csv'" in out and "from an .npz file" in out and "DomainFile" not in out
    assert not (tmp_path / "out").exists()      # refused before any folder is made
