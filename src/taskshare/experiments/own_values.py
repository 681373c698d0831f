"""Regression labels of your own data trained on a standard scale. Raw values in the hundreds (a
disease-progression score, a price) leave a fresh head's outputs orders of magnitude short for
most of a short run: the diabetes table's target reached R² -2.0 after 20 epochs and 0.46 only
after 300. Trained on (y - mean) / std of the training rows, the saved head is then rescaled, so
the model, predict and export give values in the file's units; reported MAE and RMSE are too."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import TaskshareError

ERRORS = ("mae", "rmse")   # metrics in the label's units; R² does not change with scale


def value_scales(data, rows: np.ndarray) -> dict[str, tuple[float, float]]:
    """task -> (mean, std) of its known values among `rows`, for every regression label."""
    scales = {}
    for task in data.tasks:
        if data.kind_of(task) != "regression":
            continue
        y = data.labels[task][rows]
        y = y[~np.isnan(y)]
        if len(y) == 0:
            raise TaskshareError(f"{data.origin}: regression label {task!r} has no known value in the training rows")
        std = float(y.std())
        scales[task] = (float(y.mean()), std if std > 0 else 1.0)
    return scales


def scaled(labels: dict[str, np.ndarray], scales: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    return {t: ((y - scales[t][0]) / scales[t][1]).astype(np.float32) if t in scales else y for t, y in labels.items()}


def unscale_metrics(metrics: dict[str, dict[str, float]], scales: dict[str, tuple[float, float]]) -> None:
    """MAE and RMSE measured on the standard scale, back in the label's units (in place)."""
    for task, (_, std) in scales.items():
        for key, value in metrics.get(task, {}).items():
            if key in ERRORS and value is not None:
                metrics[task][key] = value * std


def fold_scales(model: nn.Module, scales: dict[str, tuple[float, float]]) -> None:
    """Each regression head's last Linear made to output mean + std * (what it output)."""
    for task, (mean, std) in scales.items():
        head = model.heads[task]
        linear = head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            linear.weight.mul_(std)
            linear.bias.mul_(std).add_(mean)
