"""Kill a training run with SIGKILL (or stop it with SIGTERM) mid-epoch, resume it, and end with the
same parameters, bit for bit, as a run that was never interrupted."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taskshare.io import load_tensors
from taskshare.train.resume import RunCheckpoints

from ..conftest import wait_for_checkpoint

SCRIPT = Path(__file__).with_name("resume_script.py")


def _run(out, ckpt="-", slow=0.0, resume=False, wait=True):
    args = [sys.executable, str(SCRIPT), str(out), str(ckpt), str(slow), "1" if resume else "0"]
    if wait:
        subprocess.run(args, check=True, capture_output=True, timeout=120)
        return None
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _interrupt(tmp_path, sig):
    ckpt = tmp_path / "ckpt"
    proc = _run(tmp_path, ckpt, slow=0.05, wait=False)
    wait_for_checkpoint(proc, ckpt, 12, 90)   # a mid-epoch checkpoint of the second epoch
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    return ckpt, code


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_resumes_to_identical_parameters(tmp_path, sig):
    reference = tmp_path / "reference"
    reference.mkdir()
    _run(reference)
    ckpt, code = _interrupt(tmp_path, sig)
    assert not (tmp_path / "final.safetensors").exists()
    if sig == signal.SIGTERM:
        assert code == 143                  # saved a checkpoint, then exited
    else:
        assert code == -signal.SIGKILL
    _run(tmp_path, ckpt, resume=True)
    done = int((tmp_path / "steps.txt").read_text())
    assert 0 < done <= 32 - 12            # it continued: at least 12 of the 32 steps were not redone
    a, b = load_tensors(reference / "final.safetensors"), load_tensors(tmp_path / "final.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_corrupt_newest_checkpoint_is_skipped(tmp_path, caplog):
    store = RunCheckpoints(tmp_path, keep=3)
    store.save({"step": 1, "value": torch.ones(2)})
    store.save({"step": 2, "value": torch.zeros(2)})
    newest = store.files()[-1]
    newest.write_bytes(newest.read_bytes()[:20])          # half-written
    (tmp_path / "step-000000003.pt").write_bytes(b"not a checkpoint")
    state = store.latest()
    assert state["step"] == 1 and torch.equal(state["value"], torch.ones(2))
    assert "skipping checkpoint" in caplog.text
    for step in range(4, 9):
        store.save({"step": step})
    assert len(store.files()) == 3


def test_resume_needs_a_checkpoint_dir():
    from taskshare import TaskshareError, TrainConfig
    with pytest.raises(TaskshareError, match="train.resume"):
        TrainConfig(resume=True)


@pytest.mark.slow
def test_multitask_run_with_a_stateful_method_resumes_exactly(tmp_path, caplog):
    """In-process: a run stopped after its checkpoints (epochs cut short) and resumed with the full
    budget ends where the uninterrupted run ends, FAMO's logits and Adam moments included."""
    from torch import nn

    from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig, fit_multitask
    from taskshare.balancing import FAMO

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    data = MultiTaskDataset(x, {"a": (x[:, 0] > 0).long(), "b": x[:, 1] * 3})
    tasks = [Task("a", num_classes=2), Task("b", "regression")]

    def train(epochs, ckpt=None, resume=False, method=None):
        torch.manual_seed(0)
        model = HardSharing(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), tasks, in_features=8)
        method = method or FAMO(num_tasks=2)
        cfg = TrainConfig(epochs=epochs, batch_size=16, min_steps=0, progress=False, device="cpu", schedule="constant",
                          warmup=0.0, checkpoint_dir=ckpt, checkpoint_every=4, resume=resume)
        fit_multitask(model, tasks, data, None, cfg, balancer=method)
        return model, method

    full, full_method = train(4)
    train(2, tmp_path)                                   # "interrupted" after 2 of 4 epochs
    import logging
    with caplog.at_level(logging.INFO, logger="taskshare"):
        resumed, resumed_method = train(4, tmp_path, resume=True)
    assert "resumed from" in caplog.text and "epoch 2, batch 0" in caplog.text
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(full_method.logits, resumed_method.logits)


@pytest.mark.slow
def test_per_task_datasets_resume_to_the_same_batches(tmp_path):
    """One dataset per task (TaskLoader): each task's order and position carry over epochs, and are
    saved with the run, so the resumed run draws the batches the uninterrupted one draws."""
    from torch import nn

    from taskshare import HardSharing, Task, TrainConfig, fit_multitask

    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 6, generator=g)
    data = {"a": (x[:50], (x[:50, 0] > 0).long()), "b": (x[40:], x[40:, 1] * 3)}
    tasks = [Task("a", num_classes=2), Task("b", "regression")]

    def train(epochs, ckpt=None, resume=False):
        torch.manual_seed(0)
        model = HardSharing(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), tasks, in_features=8)
        cfg = TrainConfig(epochs=epochs, batch_size=16, min_steps=0, progress=False, device="cpu", schedule="constant",
                          warmup=0.0, checkpoint_dir=ckpt, checkpoint_every=3, resume=resume)
        fit_multitask(model, tasks, data, None, cfg, sampler="uniform")
        return model

    full = train(5)
    train(2, tmp_path)
    resumed = train(5, tmp_path, resume=True)
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), resumed.parameters()))


def test_resuming_with_another_model_names_the_checkpoint(tmp_path):
    from torch import nn

    from taskshare import Task, TaskshareError, TrainConfig, fit
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    cfg = dict(epochs=1, batch_size=16, min_steps=0, progress=False, device="cpu", checkpoint_dir=str(tmp_path))
    fit(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), Task("a", num_classes=2), (x, y), None,
        TrainConfig(**cfg))
    wider = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(TaskshareError, match=r"(?s)step-000000002\.pt was written by another model: .*size mismatch"):
        fit(wider, Task("a", num_classes=2), (x, y), None, TrainConfig(**cfg, resume=True))
