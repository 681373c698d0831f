"""Training batches never hold a single example (BatchNorm in train mode cannot normalise one)."""
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from taskshare import Task, TrainConfig, fit
from taskshare.data.loaders import batch_count, make_loader
from taskshare.data.multitask import MultiTaskDataset, MultiTaskLoader


class Rows(Dataset):
    """A plain Dataset (not the in-memory fast path), as image sources are."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_batch_count_drops_only_a_shuffled_last_batch_of_one():
    assert batch_count(33, 32, shuffle=True) == 1
    assert batch_count(33, 32, shuffle=False) == 2      # evaluation sees every example
    assert batch_count(34, 32, shuffle=True) == 2
    assert batch_count(1, 32, shuffle=True) == 1        # a dataset of one still trains
    assert batch_count(64, 32, shuffle=True, drop_last=True) == 2


@pytest.mark.parametrize("plain", [False, True])
def test_training_loaders_yield_no_batch_of_one(plain):
    x, y = torch.randn(33, 4), torch.randint(0, 2, (33,))
    data = Rows(x, y) if plain else torch.utils.data.TensorDataset(x, y)
    from taskshare.data import to_dataset
    loader = make_loader(data if plain else to_dataset((x.numpy(), y.numpy()), "train"), 32, shuffle=True)
    sizes = [len(b[0]) for b in loader]
    assert sizes == [32]
    assert [len(b[0]) for b in make_loader(Rows(x, y), 32, shuffle=False)] == [32, 1]
    mt = MultiTaskLoader(MultiTaskDataset(x, {"a": y}), 32, shuffle=True)
    assert [len(b[0]) for b in mt] == [32]


def test_fit_with_batchnorm_on_one_more_than_a_batch_trains():
    torch.manual_seed(0)
    x, y = torch.randn(65, 4), torch.randint(0, 2, (65,))
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    task = Task("t", "multiclass", num_classes=2)
    fit(model, task, Rows(x, y), Rows(x[:16], y[:16]), TrainConfig(epochs=2, batch_size=32, min_steps=0))
