"""Own-data runs through `taskshare run` are reproducible and resumable: the same config in two fresh
processes gives the same numbers, and a run killed mid-training ends, with --resume, where an
uninterrupted one does (transfer with a source stage, and multi-task)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import wait_for_checkpoint
from .data.own_files import table_csv

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"epochs": 3, "min_steps": 0, "batch_size": 8, "progress": False, "device": "cpu"}

# `taskshare run` in a fresh process, after drawing argv[2] random numbers (another random history),
# each optimizer step slowed by argv[3] seconds so a test can kill the run in the middle
SCRIPT = r"""
import sys, time
import torch
torch.set_num_threads(1)
torch.rand(int(sys.argv[2]))
slow = float(sys.argv[3])
if slow:
    step = torch.optim.Optimizer.step
    def slowed(self, *args, **kwargs):
        time.sleep(slow)
        return step(self, *args, **kwargs)
    torch.optim.Optimizer.step = slowed
from taskshare.cli import main
sys.exit(main(["run", sys.argv[1], *sys.argv[4:]]))
"""


def _env(hash_seed: str) -> dict:
    return {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1", "COLUMNS": "400",   # log lines unwrapped
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _command(config: Path, draws: int = 0, slow: float = 0.0, *extra: str) -> list[str]:
    return [sys.executable, "-c", SCRIPT, str(config), str(draws), str(slow), *extra]


def _run(config: Path, draws: int = 0, hash_seed: str = "0", *extra: str) -> str:
    done = subprocess.run(_command(config, draws, 0.0, *extra), cwd=ROOT, env=_env(hash_seed), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def transfer_config(tmp_path: Path, out: str) -> Path:
    """A built-in MLP pretrained on one CSV table (source stage) and transferred to another."""
    source, target = table_csv(tmp_path / "source.csv", n=120, seed=1), table_csv(tmp_path / "target.csv", n=100, seed=2)
    config = {"source": {"csv": str(source), "label": "big"}, "target": {"csv": str(target), "label": "big"},
              "model": {"name": "mlp", "args": {"hidden": [16]}}, "pretrain": {"train": TRAIN},
              "transfer": {"shots": [5, "all"], "seeds": [0], "strategies": ["linear_probe", "finetune", "lp_ft"],
                           "train": TRAIN},
              "output": str(tmp_path / out)}
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def multitask_config(tmp_path: Path, out: str) -> Path:
    """Two label columns of one CSV, one of them half blank, trained as two tasks."""
    data = table_csv(tmp_path / "survey.csv", n=120)
    config = {"mode": "multitask", "data": {"csv": str(data), "labels": ["big", "shade"]},
              "model": {"name": "mlp", "args": {"hidden": [16]}},
              "multitask": {"modes": ["single", "hard"], "train": TRAIN}, "output": str(tmp_path / out)}
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _metrics(out: Path, name: str) -> list:
    rows = json.loads((out / name).read_text())["results"]
    return [(r["strategy"], r["labels_per_class"], r["test"]) if "strategy" in r else (r["mode"], r["main"])
            for r in rows]


@pytest.mark.slow
def test_transfer_with_a_source_stage_gives_identical_metrics_in_two_processes(tmp_path):
    _run(transfer_config(tmp_path, "first"), 0, "1")
    _run(transfer_config(tmp_path, "second"), 7, "2")
    first, second = _metrics(tmp_path / "first", "results.json"), _metrics(tmp_path / "second", "results.json")
    assert len(first) == 8 and first == second   # scratch and 3 strategies at 2 sizes
    pre = [json.loads((tmp_path / o / "run.json").read_text())["val_score"] for o in ("first", "second")]
    assert pre[0] == pre[1]


@pytest.mark.slow
def test_multitask_run_gives_identical_metrics_in_two_processes(tmp_path):
    _run(multitask_config(tmp_path, "first"), 0, "1")
    _run(multitask_config(tmp_path, "second"), 7, "2")
    first = _metrics(tmp_path / "first", "multitask_results.json")
    assert len(first) == 2 and first == _metrics(tmp_path / "second", "multitask_results.json")
    runs = [json.loads((tmp_path / o / "run.json").read_text())["test"] for o in ("first", "second")]
    assert runs[0] == runs[1]


def _kill_and_resume(config: Path, out: Path, run: str, min_step: int) -> None:
    """Start `taskshare run --resume`, SIGKILL it once the training run `run` (a folder under
    OUT/checkpoints) has a checkpoint at `min_step` or later, check it left no results, resume it."""
    proc = subprocess.Popen(_command(config, 0, 0.05, "--resume"), cwd=ROOT, env=_env("0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoint(proc, out / "checkpoints" / run, min_step, 300)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (out / "run.json").exists()          # it died before the end
    log = _run(config, 0, "0", "--resume")
    assert f"resumed from {out / 'checkpoints' / run}/step-" in log, log[-3000:]   # it went on from the checkpoint


def _tune(config: Path, **train) -> Path:
    raw = yaml.safe_load(config.read_text())
    for part in ("pretrain", "transfer", "multitask"):
        if part in raw:
            raw[part]["train"].update(train)
    config.write_text(yaml.safe_dump(raw))
    return config


@pytest.mark.slow
def test_killed_transfer_run_with_a_source_stage_resumes_to_the_uninterrupted_results(tmp_path):
    _run(_tune(transfer_config(tmp_path, "whole"), checkpoint_every=2))
    config = _tune(transfer_config(tmp_path, "out"), checkpoint_every=2)
    _kill_and_resume(config, tmp_path / "out", "kall-seed0/finetune/finetune/stage0", 3)
    assert (tmp_path / "out" / "checkpoints" / "pretrain").is_dir()   # the source stage was restored, not redone
    assert _metrics(tmp_path / "out", "results.json") == _metrics(tmp_path / "whole", "results.json")
    whole, resumed = (json.loads((tmp_path / o / "run.json").read_text()) for o in ("whole", "out"))
    assert (resumed["strategy"], resumed["test"]) == (whole["strategy"], whole["test"])
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_killed_multitask_run_resumes_to_the_uninterrupted_results(tmp_path):
    _run(_tune(multitask_config(tmp_path, "whole"), checkpoint_every=2))
    config = _tune(multitask_config(tmp_path, "out"), checkpoint_every=2)
    _kill_and_resume(config, tmp_path / "out", "seed0/hard", 12)
    assert _metrics(tmp_path / "out", "multitask_results.json") == _metrics(tmp_path / "whole", "multitask_results.json")
    whole, resumed = (json.loads((tmp_path / o / "run.json").read_text()) for o in ("whole", "out"))
    assert resumed["test"] == whole["test"]
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
