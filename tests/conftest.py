import numpy as np
import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig


def blobs(n_per_class: int = 40, classes: int = 3, dim: int = 8, seed: int = 0, spread: float = 0.5):
    """Linearly separable Gaussian blobs: a task every sane model learns."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, dim))
    x = np.concatenate([centers[c] + spread * rng.normal(size=(n_per_class, dim)) for c in range(classes)])
    y = np.repeat(np.arange(classes), n_per_class)
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm].astype(np.int64)


class ItemDataset(torch.utils.data.Dataset):
    """Rows served one by one, not an ArrayDataset (as image files are): loaders take torch's generic
    path. With `targets=True` the labels are also a `.targets` tensor, which label reading takes
    instead of a pass item by item."""

    def __init__(self, x, y, targets: bool = False):
        self.x, self._labels = torch.as_tensor(x), torch.as_tensor(y)
        if targets:
            self.targets = self._labels

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        return self.x[i], self._labels[i]


@pytest.fixture
def quiet():
    return TrainConfig(epochs=5, batch_size=16, progress=False, device="cpu")


@pytest.fixture
def task3():
    return Task("t", "multiclass", num_classes=3)


def small_mlp(dim: int = 8, out: int = 3) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, out))


def wait_for_checkpoint(proc, folder, min_step: int, timeout: float) -> None:
    """Wait until the run in `proc` has written a checkpoint at step `min_step` or later (a mid-epoch
    one, for the resume tests); fail the test, killing the run, if none appears in time."""
    import time

    from taskshare.train.resume import RunCheckpoints
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(int(p.name[5:14]) >= min_step for p in RunCheckpoints(folder).files()):
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint appeared")
