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
