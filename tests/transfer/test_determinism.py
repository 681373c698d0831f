"""The same call in two fresh processes gives the same numbers. The processes differ in what ran
before: one draws random numbers before the new head is made, as a script that trained or loaded its
trunk differently would, and their hash seeds differ."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import torch
from torch import nn
from taskshare import Task, TrainConfig
from taskshare.data import few_shot
from taskshare.models import new_head
from taskshare.transfer import run_strategy
from tests.conftest import blobs

torch.manual_seed(0)
trunk = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
torch.rand(int(sys.argv[1]))                   # a different random history before the head is made
task = Task("t", num_classes=3)
model = new_head(trunk, task, in_features=16)
x, y = blobs(n_per_class=60, spread=2.5, seed=1)
splits = few_shot((x, y), 20, seed=0, test=(x, y))
cfg = TrainConfig(epochs=3, batch_size=16, progress=False, device="cpu", seed=3)
out = {}
for spec in ["linear_probe", {"name": "linear_probe", "solver": "sgd"}, "lp_ft", "finetune"]:
    _, r = run_strategy(model, task, splits, spec, cfg)
    out[r.strategy] = r.test
print(json.dumps(out))
"""


def _run(draws: int, hash_seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(draws)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_probe_and_fine_tuning_give_identical_metrics_in_two_processes():
    first, second = _run(0, "1"), _run(7, "2")
    assert set(first) == {"linear_probe", "linear_probe(solver='sgd')", "lp_ft", "finetune"}
    assert first == second
