"""Dense-prediction metrics (per pixel), computed over a whole evaluation set, and delta_m over every
metric of every task as the dense multi-task literature reports it.

Segmentation: mIoU (classes present in the targets or the predictions, IoU = TP / (TP + FP + FN)
over all pixels of the set) and pixel accuracy. Depth: absolute and relative error over valid
pixels. Surface normals: mean and median angle in degrees, and the percentage of pixels within 11.25,
22.5 and 30 degrees. Each metric knows whether higher is better.
"""
from __future__ import annotations

import statistics
from typing import Mapping

import torch
from torch import Tensor

from ..errors import TaskshareError
from .metrics import Metric


def confusion(pred: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """(C, C) counts, rows the true class, columns the predicted one, over pixels with a known label."""
    idx = y.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(logits: Tensor, y: Tensor) -> float:
    """logits (pixels, C) and labels (pixels,) of known pixels."""
    c = confusion(logits.argmax(-1), y, logits.shape[-1]).double()
    tp = c.diagonal()
    union = c.sum(0) + c.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if bool(present.any()) else float("nan")


def pixel_accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(-1) == y).double().mean()) if len(y) else float("nan")


def abs_err(pred: Tensor, y: Tensor) -> float:
    return float((pred - y).abs().double().mean()) if len(y) else float("nan")


def rel_err(pred: Tensor, y: Tensor) -> float:
    """Mean |pred - y| / y over valid pixels with y > 0 (relative error is undefined at zero depth)."""
    keep = y > 0
    return float(((pred - y).abs()[keep] / y[keep]).double().mean()) if bool(keep.any()) else float("nan")


def angles(pred: Tensor, y: Tensor) -> Tensor:
    """Degrees between predicted and true normals, rows (pixels, 3); predictions need not be unit."""
    cos = torch.nn.functional.cosine_similarity(pred.double(), y.double(), dim=-1, eps=1e-12)
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


def mean_angle(pred: Tensor, y: Tensor) -> float:
    return float(angles(pred, y).mean())


def median_angle(pred: Tensor, y: Tensor) -> float:
    a = angles(pred, y)
    return float(a.median()) if len(a) % 2 else float(a.sort().values[len(a) // 2 - 1: len(a) // 2 + 1].mean())


def _within(limit: float):
    def share(pred: Tensor, y: Tensor) -> float:
        return 100.0 * float((angles(pred, y) < limit).double().mean())
    return share


DENSE_METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("miou", miou, True),
    Metric("pixel_accuracy", pixel_accuracy, True),
    Metric("abs_err", abs_err, False),
    Metric("rel_err", rel_err, False),
    Metric("mean_angle", mean_angle, False),
    Metric("median_angle", median_angle, False),
    Metric("within_11.25", _within(11.25), True),
    Metric("within_22.5", _within(22.5), True),
    Metric("within_30", _within(30.0), True),
]}


def delta_m_metrics(multi: Mapping[str, Mapping[str, float]], single: Mapping[str, Mapping[str, float]],
                    higher_is_better: Mapping[str, bool], per_task: bool = False) -> float:
    """delta_m in percent over every metric: 100 * mean_k s_k (M_k - B_k) / |B_k|, s_k = +1 where
    higher is better, -1 where lower is. per_task=False: the plain mean over all K metrics (the
    convention of the NYUv2 tables of Nash-MTL and FAMO); True: the mean within each task first, then
    over tasks (LibMTL's), so a task with many metrics does not weigh more. `higher_is_better` is
    keyed by metric name."""
    per: list[list[float]] = []
    for task, metrics in multi.items():
        if task not in single:
            raise TaskshareError(f"no single-task baseline for task {task!r}")
        gains = []
        for name, value in metrics.items():
            if name not in higher_is_better:
                raise TaskshareError(f"metric {name!r} of task {task!r}: direction unknown; "
                                     f"expected one of {sorted(higher_is_better)}")
            base = single[task][name]
            if base == 0:
                raise TaskshareError(f"task {task!r}: the single-task {name} is 0; relative change is undefined")
            gains.append((1 if higher_is_better[name] else -1) * 100.0 * (value - base) / abs(base))
        per.append(gains)
    if per_task:
        return statistics.mean(statistics.mean(g) for g in per)
    return statistics.mean(g for gains in per for g in gains)
