"""Adaptation runs resume exactly: the method's own modules (discriminators, MCD's classifiers, PADA's
running class weights) and the ramp / reversal schedule are part of the run checkpoint."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig
from taskshare.adapt import ADAPTERS, build_method, fit_adaptation
from taskshare.models.trunk_head import TrunkHead
from taskshare.train.resume import RunCheckpoints

from ..conftest import wait_for_checkpoint

SCRIPT = Path(__file__).with_name("adapt_resume_script.py")


def _run(out, ckpt="-", slow=0.0, resume=False, wait=True, method="mcd"):
    args = [sys.executable, str(SCRIPT), str(out), str(ckpt), str(slow), "1" if resume else "0", method]
    if wait:
        subprocess.run(args, check=True, capture_output=True, timeout=180)
        return None
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkilled_adaptation_run_resumes_to_identical_parameters(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    _run(reference)
    ckpt = tmp_path / "ckpt"
    proc = _run(tmp_path, ckpt, slow=0.05, wait=False)
    wait_for_checkpoint(proc, ckpt, 12, 120)   # a mid-epoch checkpoint of the second epoch (8 steps an epoch)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    _run(tmp_path, ckpt, resume=True)
    done = int((tmp_path / "steps.txt").read_text())
    assert 0 < done <= 32 - 12             # it continued where the checkpoint was
    a, b = torch.load(reference / "final.pt"), torch.load(tmp_path / "final.pt")
    for part in ("model", "method"):
        assert a[part].keys() == b[part].keys() and len(a[part]) > 0
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


@pytest.mark.parametrize("name", ADAPTERS.names())
def test_resume_from_an_epoch_end_matches_the_uninterrupted_run(tmp_path, name):
    """In-process: the full run keeps all its checkpoints; the newer ones are then removed (as if the
    run had died after epoch 2), and a fresh model and method resume to the full run's end."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()
    x_target = torch.randn(64, 4, generator=g) + 1.0

    def train(resume):
        torch.manual_seed(0)
        model = TrunkHead(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 2))
        method = build_method(name)
        cfg = TrainConfig(epochs=4, batch_size=32, min_steps=0, progress=False, device="cpu", checkpoint_dir=str(tmp_path),
                          keep_checkpoints=10, resume=resume)
        fit_adaptation(model, Task("c", num_classes=2), (x, y), x_target, None, cfg, method=method)  # the last epoch kept
        return model, method

    full, full_method = train(False)
    for path in RunCheckpoints(tmp_path).files()[2:]:
        path.unlink()                       # epochs 1 and 2 remain
    resumed, resumed_method = train(True)
    for p, q in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)
    for k, v in full_method.state_dict().items():
        assert torch.equal(v, resumed_method.state_dict()[k]), k
