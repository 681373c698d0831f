"""What `auto` pairs per held-out example, for every task kind: a score that tracks the task's main
metric, so that candidates can be compared with scratch on the same examples (evidence.decide).

Where the main metric is a mean over examples (accuracy, error) the score is that metric's per-example
term. Where it is not (AUROC, average precision and F1 rank or count over the whole set), no
per-example term exists, and the score is the Brier score: a proper score (the expected score is best
for the true probabilities), and bounded, so one confident mistake on a small validation split cannot
outweigh everything else as it can under log loss. Regression errors are divided by the targets'
spread (over every labelled example, the same for all candidates and rounds), so a lead reads in
units of R² (or of MAE over the spread) and `auto`'s max_se means the same on every scale of target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..tasks import Task


@dataclass(frozen=True)
class ExampleScore:
    """One number per labelled held-out example, in the examples' order (unknown labels skipped)."""

    kind: str                  # the task kind
    metric: str                # the task's main metric
    name: str                  # correct | fraction_correct | brier | squared_error | absolute_error
    higher_is_better: bool
    scale: Tensor | None = field(default=None, compare=False)   # regression: per-output spread

    def describe(self) -> str:
        """The evidence in words, for auto's note."""
        what = {
            "correct": "correctness, 1 where the prediction is right and 0 where not (its mean is the accuracy)",
            "fraction_correct": "fraction of each example's known labels predicted right (higher is better)",
            "brier": "Brier score, the squared error of the predicted probabilities, lower is better",
            "squared_error": "squared error over the targets' variance, lower is better (its mean is 1 - R²)",
            "absolute_error": "absolute error over the targets' standard deviation, lower is better",
        }[self.name]
        proxy = (f"; {self.metric} has no per-example form, so this proper score stands in"
                 if self.name == "brier" else "")
        return f"{what}{proxy}"

    def __call__(self, out: Tensor, y: Tensor, task: Task) -> list[float]:
        out = out.float()
        if self.kind == "multiclass":
            y = y.reshape(-1).long()
            known = y >= 0
            if self.name == "correct":
                return (out.argmax(1) == y)[known].float().tolist()
            p = out[known].softmax(1)
            onehot = torch.nn.functional.one_hot(y[known], p.shape[1]).float()
            return ((p - onehot).pow(2).sum(1) / 2).tolist()     # halved: 0 best, 1 worst, like the others
        y = task.prepare_target(y)
        known = task.known(y)
        out = out.reshape(y.shape)
        if self.kind == "regression":
            return _regression_terms(out, y, known, self.scale, self.name)
        safe = torch.where(known, y, torch.zeros_like(y))
        if self.name in ("correct", "fraction_correct"):
            terms = ((out > 0) == (safe > 0.5)).float()
        else:
            terms = (torch.sigmoid(out) - safe).pow(2)
        rows = known.any(-1)
        per_row = (terms * known).sum(-1) / known.sum(-1).clamp_min(1)
        return per_row[rows].tolist()


def _regression_terms(out: Tensor, y: Tensor, known: Tensor, scale: Tensor | None, name: str) -> list[float]:
    """Per row with any known output: the regression metrics read each output over its own known
    entries, then average over outputs, so a row's term weighs each known entry by 1 / (that column's
    known count) and the rows' mean is the columns' mean error (with every entry known: the row's mean
    over outputs)."""
    err = torch.where(known, out - y, torch.zeros_like(y))
    scale = scale if scale is not None else torch.ones(y.shape[1])
    terms = err.pow(2) / scale.pow(2) if name == "squared_error" else err.abs() / scale
    counts = known.sum(0)
    live = counts > 0
    rows = known.any(-1)
    weights = torch.where(live, rows.sum() / (live.sum() * counts.clamp_min(1)), torch.zeros_like(counts, dtype=terms.dtype))
    return (terms * weights).sum(-1)[rows].tolist()


def example_score(task: Task, labelled_targets: Tensor | None = None) -> ExampleScore:
    """The per-example score for `task`'s main metric. `labelled_targets`: every labelled example's
    target (train and validation), whose spread scales regression errors."""
    metric = task.main_metric
    if task.kind == "regression":
        name = "absolute_error" if metric == "mae" else "squared_error"   # r2 and rmse order as MSE does
        return ExampleScore(task.kind, metric, name, False, _spread(task, labelled_targets))
    if metric in ("accuracy", "binary_accuracy"):
        name = "correct" if task.kind in ("multiclass", "binary") else "fraction_correct"
        return ExampleScore(task.kind, metric, name, True)
    return ExampleScore(task.kind, metric, "brier", False)


def _spread(task: Task, targets: Tensor | None) -> Tensor | None:
    """Per-output standard deviation over that output's known entries (1 where it is undefined or zero)."""
    if targets is None:
        return None
    y = task.prepare_target(targets)
    known = task.known(y)
    sd = torch.ones(y.shape[1])
    for j in range(y.shape[1]):
        column = y[known[:, j], j]
        if len(column) >= 2 and float(column.std()) > 1e-12:
            sd[j] = column.std()
    return sd
