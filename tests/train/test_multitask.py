import numpy as np
import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.data.multitask import MultiTaskDataset
from taskshare.models import HardSharing
from taskshare.train.multitask import evaluate_multitask, fit_multitask


def _data(n=200, seed=0, missing=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    a = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    b = (x[:, 0] - x[:, 2]).astype(np.float32)
    a[rng.random(n) < missing] = -1
    b[rng.random(n) < missing] = np.nan
    return MultiTaskDataset(x, {"a": a, "b": b})


TASKS = [Task("a", "multiclass", num_classes=2), Task("b", "regression")]


def _model():
    torch.manual_seed(0)
    return HardSharing(nn.Sequential(nn.Linear(6, 32), nn.ReLU()), TASKS, in_features=32)


@pytest.mark.slow
def test_hard_sharing_learns_both_tasks_with_missing_labels():
    model = _model()
    history = fit_multitask(model, TASKS, _data(), _data(seed=1), TrainConfig(epochs=20, lr=1e-2, progress=False))
    m = evaluate_multitask(model, TASKS, _data(seed=2))
    assert m["a"]["accuracy"] > 0.9 and m["b"]["r2"] > 0.8
    assert "val_a_accuracy" in history.epochs[-1] and np.isfinite(history.epochs[-1]["train_loss"])


def test_batch_with_no_known_label_for_a_task_adds_zero_and_no_nan():
    data = _data(n=64, missing=0.0)
    data.labels["b"][:32] = float("nan")  # the first half has no known value for b
    model = _model()
    out = model(data.x[:32])
    assert TASKS[1].loss(out["b"], data.labels["b"][:32]).item() == 0.0
    fit_multitask(model, TASKS, data, None, TrainConfig(epochs=2, batch_size=32, progress=False, min_steps=0))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_one_dataset_per_task():
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(150, 6)).astype(np.float32), rng.normal(size=(60, 6)).astype(np.float32)
    train = {"a": (xa, (xa[:, 0] > 0).astype(np.int64)), "b": (xb, xb[:, 1].astype(np.float32))}
    model = _model()
    fit_multitask(model, TASKS, train, train, TrainConfig(epochs=10, lr=1e-2, progress=False), sampler="temperature")
    m = evaluate_multitask(model, TASKS, train)
    assert m["a"]["accuracy"] > 0.85 and m["b"]["r2"] > 0.5


def test_bad_multitask_inputs_name_the_task():
    data = _data()
    data.labels["b"][:] = float("nan")
    with pytest.raises(TaskshareError, match="task 'b': every label in the training data is missing"):
        fit_multitask(_model(), TASKS, data, None, TrainConfig(epochs=1, progress=False))
    data = _data()
    data.labels["a"][0] = 2
    with pytest.raises(TaskshareError, match="task 'a': training data has label 2"):
        fit_multitask(_model(), TASKS, data, None, TrainConfig(epochs=1, progress=False))
    with pytest.raises(TaskshareError, match="no labels for task 'b'"):
        fit_multitask(_model(), TASKS, MultiTaskDataset(data.x, {"a": data.labels["a"]}), None, TrainConfig(epochs=1))
    with pytest.raises(TaskshareError, match="loss weight for unknown task 'c'"):
        fit_multitask(_model(), TASKS, _data(), None, TrainConfig(epochs=1), weights={"c": 2.0})


def test_label_width_that_does_not_fit_the_head_names_the_task():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    tags = Task("tags", "multilabel", num_classes=3)
    data = MultiTaskDataset(x, {"tags": (rng.random((40, 2)) > 0.5).astype(np.float32)})  # 2 columns, head has 3
    model = HardSharing(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), [tags], in_features=8)
    with pytest.raises(TaskshareError, match="task 'tags': training data has 2 label columns, expected 3"):
        fit_multitask(model, [tags], data, None, TrainConfig(epochs=1, progress=False))
