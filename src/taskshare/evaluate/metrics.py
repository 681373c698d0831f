"""Metrics over whole prediction sets; each knows whether higher is better.

Every function takes model outputs (logits or predictions) and targets whose unknown entries were
already removed, and returns a Python float.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Tensor, Tensor], float]
    higher_is_better: bool


def accuracy(logits: Tensor, y: Tensor) -> float:
    return (logits.argmax(-1) == y).float().mean().item()


def macro_f1(logits: Tensor, y: Tensor) -> float:
    """Mean F1 over the classes present in targets or predictions."""
    pred = logits.argmax(-1)
    classes = torch.unique(torch.cat([y, pred]))
    scores = [_f1(pred == c, y == c) for c in classes]
    return float(sum(scores) / len(scores))


def _f1(pred: Tensor, true: Tensor) -> float:
    tp = (pred & true).sum().item()
    fp = (pred & ~true).sum().item()
    fn = (~pred & true).sum().item()
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def binary_accuracy(logits: Tensor, y: Tensor) -> float:
    return ((logits > 0) == (y > 0.5)).float().mean().item()


def binary_f1(logits: Tensor, y: Tensor) -> float:
    return _f1(logits.reshape(-1) > 0, y.reshape(-1) > 0.5)


def auroc(scores: Tensor, y: Tensor) -> float:
    """Area under the ROC curve by the rank-sum formula, ties given their mean rank."""
    scores, y = scores.reshape(-1).double(), y.reshape(-1) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    unique, inverse, counts = torch.unique(sorted_scores, return_inverse=True, return_counts=True)
    if len(unique) < len(scores):  # average ranks within tied groups
        sums = torch.zeros(len(unique), dtype=scores.dtype).index_add_(0, inverse, ranks[order])
        ranks[order] = (sums / counts)[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mae(pred: Tensor, y: Tensor) -> float:
    return (pred - y).abs().mean().item()


def rmse(pred: Tensor, y: Tensor) -> float:
    return (pred - y).pow(2).mean().sqrt().item()


def r2(pred: Tensor, y: Tensor) -> float:
    """Coefficient of determination, averaged over output columns, as scikit-learn's r2_score: a
    column whose targets are all equal scores 1.0 if predicted exactly, else 0.0 (its force_finite
    default; a NaN there would spread to every mean over tasks and to delta_m). NaN only with fewer
    than two targets, where no R2 is defined."""
    pred, y = pred.reshape(len(y), -1).double(), y.reshape(len(y), -1).double()
    if len(y) < 2:
        return float("nan")
    ss_res = (y - pred).pow(2).sum(0)
    ss_tot = (y - y.mean(0)).pow(2).sum(0)
    constant = (y == y[0]).all(0)      # exactly, not by a tolerance: a tiny real spread is still a spread
    scores = torch.where(constant, (ss_res == 0).double(), 1 - ss_res / torch.where(constant, 1.0, ss_tot))
    return scores.mean().item()


def _average_precision(scores: Tensor, y: Tensor) -> float:
    from .multilabel import average_precision
    return average_precision(scores, y)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", accuracy, True),
        Metric("macro_f1", macro_f1, True),
        Metric("binary_accuracy", binary_accuracy, True),
        Metric("f1", binary_f1, True),
        Metric("auroc", auroc, True),
        Metric("auroc_micro", auroc, True),       # multi-label: every label's scores pooled in one ranking
        Metric("map", lambda s, y: _average_precision(s, y), True),   # multi-label: mean AP over labels
        Metric("mae", mae, False),
        Metric("rmse", rmse, False),
        Metric("r2", r2, True),
    ]
}


def compute_metrics(names: list[str], outputs: Tensor, targets: Tensor) -> dict[str, float]:
    return {name: METRICS[name].fn(outputs, targets) for name in names}


def regression_metrics(names: list[str], pred: Tensor, y: Tensor, known: Tensor) -> dict[str, float]:
    """R2, MAE and RMSE of (n, outputs) predictions where some targets are unknown: each output column
    over its own known entries (a row missing one output still counts for the others, as in the loss),
    then over the columns that have any: R2 and MAE their mean (sklearn's multioutput='uniform_average'),
    RMSE the root of the columns' mean squared error (every entry known: the root of the mean over all
    entries, as before). NaN where no column has a known entry."""
    pred, y, known = pred.reshape(len(y), -1), y.reshape(len(y), -1), known.reshape(len(y), -1)
    cols = [j for j in range(y.shape[1]) if bool(known[:, j].any())]
    if not cols:
        return {name: float("nan") for name in names}
    columns = [(pred[known[:, j], j], y[known[:, j], j]) for j in cols]
    values = {
        "r2": sum(r2(p, t) for p, t in columns) / len(cols),
        "mae": sum(mae(p, t) for p, t in columns) / len(cols),
        "rmse": (sum((p - t).pow(2).mean().item() for p, t in columns) / len(cols)) ** 0.5,
    }
    return {name: values[name] for name in names}
