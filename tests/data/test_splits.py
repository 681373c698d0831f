import numpy as np
import pytest
import torch

from taskshare import NonFiniteError, TaskshareError
from taskshare.data import ArrayDataset, few_shot, make_loader, per_class, split, to_dataset


def test_stratified_split_keeps_class_balance_and_is_disjoint():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    s = split((np.arange(100.0)[:, None], y), val_fraction=0.2, seed=1)
    val_y = s.val.y.numpy()
    assert np.bincount(val_y).tolist() == [10, 6, 4]
    assert set(s.train.x[:, 0].tolist()).isdisjoint(s.val.x[:, 0].tolist())


def test_few_shot_takes_k_per_class_and_disjoint_validation():
    y = np.repeat([0, 1], 30)
    x = np.arange(60.0)[:, None]
    s = few_shot((x, y), 5, seed=0, val_per_class=3)
    assert np.bincount(s.train.y.numpy()).tolist() == [5, 5]
    assert np.bincount(s.val.y.numpy()).tolist() == [3, 3]
    assert set(s.train.x[:, 0].tolist()).isdisjoint(s.val.x[:, 0].tolist())


def test_k_larger_than_data_is_named():
    with pytest.raises(TaskshareError, match="class 1 has 3 available examples but 10"):
        per_class(np.array([0] * 20 + [1] * 3), 10, seed=0)


def test_empty_and_mismatched_and_nonfinite_inputs():
    with pytest.raises(TaskshareError, match="empty"):
        to_dataset((np.zeros((0, 3)), np.zeros(0)))
    with pytest.raises(TaskshareError, match="5 inputs but 4 labels"):
        ArrayDataset(np.zeros((5, 3)), np.zeros(4))
    x = np.zeros((4, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"first at index \(2, 1\)"):
        ArrayDataset(x, np.zeros(4))


def test_tensor_loader_is_reproducible_and_covers_every_item():
    ds = ArrayDataset(torch.arange(11.0)[:, None], torch.arange(11))   # 11 = 3 * 3 + 2: no last batch of one
    a = [y.tolist() for _, y in make_loader(ds, 3, shuffle=True, seed=4)]
    b = [y.tolist() for _, y in make_loader(ds, 3, shuffle=True, seed=4)]
    assert a == b
    assert sorted(sum(a, [])) == list(range(11))
