import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from taskshare import Task, TrainConfig
from taskshare.data import ArrayDataset, few_shot
from taskshare.transfer.disk_cache import DiskFeatureCache
from taskshare.transfer.features import FeatureCache
from taskshare.transfer.run import run_strategy
from taskshare.models import TrunkHead

from ..conftest import ItemDataset, blobs


class CountingTrunk(nn.Module):
    """A fixed random projection that counts the rows it has seen."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.rows = 0

    def forward(self, x):
        self.rows += len(x)
        return self.net(x)


def test_subsets_are_gathered_from_one_pass_and_match_memory(tmp_path):
    x, y = blobs(30, 3)
    data = ItemDataset(x, y, targets=True)
    trunk = CountingTrunk()
    cache = DiskFeatureCache(trunk, torch.device("cpu"), tmp_path, batch_size=7)
    memory = FeatureCache(CountingTrunk(), torch.device("cpu"))
    for seed in range(3):                        # three seeds' splits: the trunk runs over the data once
        part = Subset(data, np.random.default_rng(seed).permutation(len(data))[:20].tolist())
        got, want = cache.get(part), memory.get(part)
        assert torch.allclose(got.x, want.x.cpu(), atol=1e-6) and torch.equal(got.y, torch.as_tensor(want.y))
    assert trunk.rows == len(data)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0] == "features0.npy" and len(files) == 4
    assert isinstance(np.load(tmp_path / "features0.npy", mmap_mode="r"), np.memmap)


def test_probe_on_disk_features_equals_probe_in_memory(tmp_path):
    x, y = blobs(30, 3)
    task = Task("t", num_classes=3)
    model = TrunkHead(nn.Sequential(nn.Linear(8, 16), nn.Tanh()), nn.Linear(16, 3))
    splits = few_shot(ItemDataset(x, y, targets=True), 5, seed=0, test=ArrayDataset(x, y))
    cfg = TrainConfig(epochs=3, min_steps=0, batch_size=8, progress=False, device="cpu")
    disk = DiskFeatureCache(model.trunk, torch.device("cpu"), tmp_path)
    _, a = run_strategy(model, task, splits, "linear_probe", cfg, cache=disk)
    _, b = run_strategy(model, task, splits, "linear_probe", cfg, cache=True)
    assert a.cached and b.cached
    assert a.test["accuracy"] == b.test["accuracy"] and abs(a.val_score - b.val_score) < 1e-6
