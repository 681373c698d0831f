import math

import pytest
import torch
import torch.nn.functional as F

from taskshare import Task, TaskshareError


def test_multiclass_loss_skips_missing_labels_and_normalises_by_known_count():
    task = Task("t", "multiclass", num_classes=3)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    y = torch.tensor([0, -1, 2])
    expected = (F.cross_entropy(logits[0:1], y[0:1]) + F.cross_entropy(logits[2:3], y[2:3])) / 2
    assert torch.allclose(task.loss(logits, y), expected)


def test_multilabel_loss_matches_hand_sum_over_known_entries():
    task = Task("m", "multilabel", num_classes=2)
    z = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    y = torch.tensor([[1.0, float("nan")], [0.0, -1.0]])
    sig = torch.sigmoid
    hand = -(math.log(sig(torch.tensor(1.0))) + math.log(1 - sig(torch.tensor(0.5)))) / 2
    assert task.loss(z, y).item() == pytest.approx(hand, rel=1e-6)


def test_all_missing_gives_zero_loss_with_graph():
    task = Task("r", "regression")
    out = torch.randn(4, 1, requires_grad=True)
    loss = task.loss(out, torch.full((4,), float("nan")))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(out.grad, torch.zeros_like(out))


@pytest.mark.parametrize("kind,size,head_out", [("multiclass", 4, 4), ("binary", None, 1), ("multilabel", 3, 3), ("regression", None, 1)])
def test_head_width_follows_task(kind, size, head_out):
    task = Task("t", kind, num_classes=size)
    assert task.make_head(7).out_features == head_out


def test_label_outside_classes_is_named():
    task = Task("digits", "multiclass", num_classes=5)
    with pytest.raises(TaskshareError, match=r"'digits'.*label 7.*\[0, 4\]"):
        task.check_labels(torch.tensor([0, 1, 7]))


def test_bad_task_definitions():
    with pytest.raises(TaskshareError, match="kind 'ordinal'"):
        Task("t", "ordinal")
    with pytest.raises(TaskshareError, match="num_classes >= 2"):
        Task("t", "multiclass")
    with pytest.raises(TaskshareError, match="metric 'r2'"):
        Task("t", "multiclass", num_classes=3, metric="r2")


def test_metrics_skip_unknown_labels():
    task = Task("t", "multiclass", num_classes=2)
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    m = task.metrics(logits, torch.tensor([0, -1, 1]))
    assert m["accuracy"] == pytest.approx(0.5)
