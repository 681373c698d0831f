"""Dense kinds and metrics on hand-computed masks, depths and angles."""
import math

import pytest
import torch

from taskshare import TaskshareError
from taskshare.evaluate.dense import DENSE_METRICS, delta_m_metrics, median_angle, miou
from taskshare.tasks_dense import DenseHead, DenseTask


def _logits(pred, classes):
    return torch.nn.functional.one_hot(pred, classes).movedim(-1, 1).float() * 5


def test_segmentation_miou_pixel_accuracy_and_ignored_pixels():
    # one 2x3 image; true [[0, 0, 1], [1, 2, -1]] (last pixel unlabelled), predicted [[0, 1, 1], [1, 2, 0]]
    y = torch.tensor([[[0, 0, 1], [1, 2, -1]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    task = DenseTask("seg", "segmentation", num_classes=3)
    m = task.metrics(_logits(pred, 3), y)
    # class 0: TP 1, FN 1, FP 0 -> 1/2; class 1: TP 2, FP 1 -> 2/3; class 2: 1/1 (the ignored pixel's 0 counts nowhere)
    assert m["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["pixel_accuracy"] == pytest.approx(4 / 5)
    # the loss skips the unlabelled pixel: changing its logits changes nothing
    logits = torch.randn(1, 3, 2, 3)
    other = logits.clone()
    other[0, :, 1, 2] = torch.tensor([9.0, -9.0, 3.0])
    assert torch.equal(task.loss(logits, y), task.loss(other, y))
    expected = torch.nn.functional.cross_entropy(logits.movedim(1, -1).reshape(-1, 3)[:5], y.reshape(-1)[:5])
    assert task.loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)


def test_miou_leaves_out_classes_absent_from_both():
    y = torch.tensor([0, 0, 1])
    assert miou(_logits(torch.tensor([0, 0, 1]), 4).reshape(3, 4), y) == 1.0


def test_depth_masked_l1_and_errors():
    task = DenseTask("depth", "depth")
    y = torch.tensor([[[2.0, 4.0], [float("nan"), 1.0]]])
    pred = torch.tensor([[[[3.0, 4.0], [100.0, 0.5]]]])        # (1, 1, 2, 2)
    # valid pixels: |1|, |0|, |0.5| -> abs 0.5; relative 1/2, 0, 0.5/1 -> 1/3
    m = task.metrics(pred, y)
    assert m["abs_err"] == pytest.approx(0.5) and m["rel_err"] == pytest.approx(1 / 3)
    assert task.loss(pred, y).item() == pytest.approx(0.5)
    assert not task.higher_is_better
    none_known = torch.full((1, 2, 2), float("nan"))
    loss = task.loss(pred.requires_grad_(), none_known)
    assert loss.item() == 0.0 and loss.requires_grad


def test_normals_angles_by_hand():
    task = DenseTask("normals", "normals")
    # four pixels: the true normal is +z; predictions at 0, 10, 45 and 90 degrees (unnormalised lengths)
    deg = torch.tensor([0.0, 10.0, 45.0, 90.0])
    rad = torch.deg2rad(deg)
    pred = torch.stack([torch.sin(rad), torch.zeros(4), torch.cos(rad)]) * torch.tensor([1.0, 2.0, 0.5, 3.0])
    y = torch.tensor([0.0, 0.0, 1.0]).reshape(3, 1).expand(3, 4)
    pred, y = pred.reshape(1, 3, 2, 2), y.reshape(1, 3, 2, 2).clone()
    m = task.metrics(pred, y)
    assert m["mean_angle"] == pytest.approx(deg.mean().item(), abs=1e-6)
    assert m["median_angle"] == pytest.approx(27.5, abs=1e-6)
    assert m["within_11.25"] == pytest.approx(50.0) and m["within_22.5"] == pytest.approx(50.0)
    assert m["within_30"] == pytest.approx(50.0)
    expected_loss = (1 - torch.cos(rad)).mean().item()
    assert task.loss(pred, y).item() == pytest.approx(expected_loss, abs=1e-6)
    y[0, :, 1, 1] = 0.0                                     # an unknown normal: left out
    assert task.metrics(pred, y)["mean_angle"] == pytest.approx(55 / 3, abs=1e-6)
    assert median_angle(torch.tensor([[1.0, 0, 0]]), torch.tensor([[0.0, 1.0, 0]])) == pytest.approx(90.0)


def test_delta_m_over_metrics_signs_by_direction():
    hib = {name: m.higher_is_better for name, m in DENSE_METRICS.items()}
    single = {"seg": {"miou": 0.50, "pixel_accuracy": 0.80}, "depth": {"abs_err": 0.40, "rel_err": 0.20}}
    multi = {"seg": {"miou": 0.55, "pixel_accuracy": 0.80}, "depth": {"abs_err": 0.44, "rel_err": 0.18}}
    # +10, 0, -10 (error up is worse), +10 (error down is better)
    assert delta_m_metrics(multi, single, hib) == pytest.approx(2.5)
    assert delta_m_metrics(multi, single, hib, per_task=True) == pytest.approx((5.0 + 0.0) / 2)
    with pytest.raises(TaskshareError, match="direction unknown"):
        delta_m_metrics({"seg": {"iou": 1.0}}, {"seg": {"iou": 1.0}}, hib)


def test_heads_decode_to_the_input_resolution_and_errors_are_named():
    task = DenseTask("seg", "segmentation", num_classes=4, size=(28, 28))
    head = task.make_head(8)
    assert isinstance(head, DenseHead) and head(torch.randn(2, 8, 7, 7)).shape == (2, 4, 28, 28)
    with pytest.raises(TaskshareError, match="expected \\(2, 4, 28, 28\\)"):
        task.loss(torch.randn(2, 4, 7, 7), torch.zeros(2, 28, 28, dtype=torch.long))
    with pytest.raises(TaskshareError, match="pixel label 7"):
        task.check_labels(torch.full((1, 2, 2), 7))
    with pytest.raises(TaskshareError, match="num_classes >= 2"):
        DenseTask("seg", "segmentation")
    with pytest.raises(TaskshareError, match="dense kind 'edges'"):
        DenseTask("e", "edges")
    assert math.isnan(DENSE_METRICS["rel_err"].fn(torch.ones(2), torch.zeros(2)))
