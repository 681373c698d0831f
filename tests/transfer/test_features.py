import copy

import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig, TrunkHead
from taskshare.data import few_shot
from taskshare.transfer import run_strategy

from ..conftest import blobs


def _pretrained():
    torch.manual_seed(1)
    trunk = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 16), nn.ReLU())
    trunk.eval()
    trunk(torch.randn(64, 8))  # non-trivial running statistics
    return TrunkHead(trunk, nn.Linear(16, 3))


def test_cached_probe_equals_uncached_probe():
    x, y = blobs(n_per_class=40)
    splits = few_shot((x, y), 20, seed=0, test=(x, y))
    task, cfg = Task("t", "multiclass", num_classes=3), TrainConfig(epochs=6, batch_size=8, progress=False, device="cpu")
    pre = _pretrained()
    cached_model, cached = run_strategy(pre, task, splits, "linear_probe", cfg, cache=True)
    plain_model, plain = run_strategy(pre, task, splits, "linear_probe", cfg, cache=False)
    assert cached.cached and not plain.cached
    for a, b in zip(cached_model.head.parameters(), plain_model.head.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert cached.test == plain.test
    assert cached.stages[0]["epochs"] == plain.stages[0]["epochs"]


@pytest.mark.slow
def test_augmentation_turns_cache_off(caplog):
    x, y = blobs(n_per_class=20)
    splits = few_shot((x, y), 10, seed=0)
    with caplog.at_level("INFO", logger="taskshare"):
        _, res = run_strategy(_pretrained(), Task("t", "multiclass", num_classes=3), splits, "linear_probe",
                              TrainConfig(epochs=1, progress=False, device="cpu"),
                              augment=lambda b: b + 0.01 * torch.randn_like(b))
    assert not res.cached
    assert "feature cache off" in caplog.text and "augmented" in caplog.text
