import math

import numpy as np
import pytest
import torch

from taskshare import TaskshareError
from taskshare.data.multitask import MultiTaskDataset, TaskLoader, task_probabilities


def _sets(sizes):
    return {t: (np.zeros((n, 2), np.float32), np.zeros(n, np.int64)) for t, n in sizes.items()}


def test_probabilities_by_hand():
    sizes = {"a": 100, "b": 400}
    assert task_probabilities(sizes, "proportional") == pytest.approx({"a": 0.2, "b": 0.8})
    assert task_probabilities(sizes, "temperature", 2.0) == pytest.approx({"a": 10 / 30, "b": 20 / 30})
    assert task_probabilities(sizes, "uniform") == pytest.approx({"a": 0.5, "b": 0.5})
    with pytest.raises(TaskshareError, match="sampler 'random'"):
        task_probabilities(sizes, "random")


@pytest.mark.parametrize("sampler,expected", [("proportional", 0.8), ("temperature", 2 / 3), ("uniform", 0.5)])
def test_empirical_proportions_match(sampler, expected):
    loader = TaskLoader(_sets({"a": 100, "b": 400}), batch_size=10, sampler=sampler, seed=1)
    assert len(loader) == 10 + 40  # one pass over every task's data
    draws = [t for _ in range(60) for t in loader.task_sequence()]
    share = draws.count("b") / len(draws)
    assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / len(draws))


def test_round_robin_alternates_and_batches_hold_one_task():
    loader = TaskLoader(_sets({"a": 30, "b": 50}), batch_size=10, sampler="round_robin")
    seq = loader.task_sequence()
    assert seq[:4] == ["a", "b", "a", "b"] and len(seq) == 8
    for x, ys in loader:
        assert len(ys) == 1 and len(x) == len(next(iter(ys.values()))) <= 10


def test_small_task_reshuffles_and_covers_all_its_items():
    data = {"a": (np.arange(5.0)[:, None], np.arange(5)), "b": (np.zeros((100, 1)), np.zeros(100, np.int64))}
    loader = TaskLoader(data, batch_size=5, sampler="uniform", seed=0)
    seen = [int(v) for _ in range(3) for x, ys in loader if "a" in ys for v in ys["a"]]
    assert len(seen) > 5 and set(seen) == set(range(5))


def test_label_length_mismatch_names_the_task():
    with pytest.raises(TaskshareError, match="task 'b' has 3 labels for 4 inputs"):
        MultiTaskDataset(np.zeros((4, 2)), {"a": np.zeros(4), "b": np.zeros(3)})


def test_shuffled_pass_never_ends_on_a_batch_of_one():
    """A task of size batch + 1: its shuffled pass drops the lone last example (seen in the next order)."""
    loader = TaskLoader(_sets({"a": 11, "b": 21}), batch_size=10, sampler="round_robin", seed=0)
    assert len(loader) == 1 + 2
    sizes = [len(x) for _ in range(4) for x, _ in loader]
    assert sizes and min(sizes) == 10
    unshuffled = TaskLoader(_sets({"a": 11}), batch_size=10, shuffle=False)
    assert [len(x) for x, _ in unshuffled] == [10, 1]    # evaluation keeps every example


def test_batchnorm_model_trains_on_a_task_of_batch_plus_one():
    from torch import nn

    from taskshare import HardSharing, Task, TrainConfig, fit_multitask
    rng = np.random.default_rng(0)
    data = {t: (rng.normal(size=(11, 4)).astype(np.float32), rng.integers(0, 2, 11)) for t in ("a", "b")}
    tasks = [Task("a", num_classes=2), Task("b", num_classes=2)]
    model = HardSharing(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU()), tasks, in_features=8)
    before = [p.detach().clone() for p in model.parameters()]
    fit_multitask(model, tasks, data, None, TrainConfig(epochs=2, batch_size=10, min_steps=0, progress=False,
                                                        device="cpu"), sampler="round_robin")
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
