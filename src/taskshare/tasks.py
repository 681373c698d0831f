"""A Task is one prediction target: what kind it is, its loss, its metrics and the head it needs.

Unknown labels are first class: -1 marks an unknown class (multiclass, binary, multilabel) and NaN an
unknown value (regression, and also accepted for binary/multilabel). Unknown entries add nothing to
the loss, which is normalised by the number of known entries; a batch with none known gives a zero
loss that still carries a graph, so training never sees NaN from an empty task.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import TaskshareError
from .evaluate.metrics import METRICS, compute_metrics, regression_metrics

KINDS = ("multiclass", "binary", "multilabel", "regression")
MISSING = -1

# First metric of each list is the one used for model selection unless the task names another.
DEFAULT_METRICS = {
    "multiclass": ["accuracy", "macro_f1"],
    "binary": ["auroc", "binary_accuracy", "f1"],
    "multilabel": ["auroc", "map", "auroc_micro", "binary_accuracy", "f1"],   # auroc, map: macro over labels
    "regression": ["r2", "mae", "rmse"],
}


@dataclass(frozen=True)
class Task:
    """A prediction target.

    name: unique within a model.
    kind: multiclass | binary | multilabel | regression.
    num_classes: classes (multiclass) or binary labels (multilabel).
    num_outputs: regression outputs (default 1).
    metric: the metric that selects models and drives early stopping (default: first of the kind's).
    """

    name: str
    kind: str = "multiclass"
    num_classes: int | None = None
    num_outputs: int | None = None
    metric: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TaskshareError(f"task name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise TaskshareError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind in ("multiclass", "multilabel"):
            if not isinstance(self.num_classes, int) or self.num_classes < 2:
                raise TaskshareError(
                    f"task {self.name!r}: a {self.kind} task needs num_classes >= 2, got {self.num_classes!r}"
                )
        if self.kind == "regression" and self.num_outputs is not None and self.num_outputs < 1:
            raise TaskshareError(f"task {self.name!r}: num_outputs must be >= 1, got {self.num_outputs!r}")
        if self.metric is not None and self.metric not in self.metric_names:
            raise TaskshareError(
                f"task {self.name!r}: metric {self.metric!r} does not fit a {self.kind} task; "
                f"expected one of {self.metric_names}"
            )

    @property
    def out_dim(self) -> int:
        if self.kind == "binary":
            return 1
        if self.kind == "regression":
            return self.num_outputs or 1
        return int(self.num_classes)  # type: ignore[arg-type]

    @property
    def metric_names(self) -> list[str]:
        return list(DEFAULT_METRICS[self.kind])

    @property
    def main_metric(self) -> str:
        return self.metric or self.metric_names[0]

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.main_metric].higher_is_better

    def make_head(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.out_dim)

    # ---- labels -------------------------------------------------------------------------------
    def known(self, y: Tensor) -> Tensor:
        """Boolean mask of known label entries, shaped like the loss terms."""
        if self.kind == "multiclass":
            return y != MISSING
        if not y.is_floating_point():
            # integer targets hold no NaN; -1 marks an unknown label, but -1 is a real regression value
            return torch.ones_like(y, dtype=torch.bool) if self.kind == "regression" else y != MISSING
        if self.kind == "regression":
            return ~torch.isnan(y)
        return ~torch.isnan(y) & (y != MISSING)

    def prepare_target(self, y: Tensor) -> Tensor:
        """Shape targets the way the loss wants them: class indices, or float columns."""
        if self.kind == "multiclass":
            return y.long().reshape(-1)
        y = y.float()
        return y.reshape(len(y), -1) if y.dim() <= 2 else y

    def check_labels(self, y: Tensor, where: str = "training data") -> None:
        """Raise with the offending value if labels do not fit this task (taskshare.validate)."""
        from .validate import check_labels
        check_labels(self, y, where)

    # ---- loss and metrics ---------------------------------------------------------------------
    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        """Mean loss over known labels; exactly zero (with a graph) when none is known."""
        y = self.prepare_target(y)
        self._check_output(output, y)
        if self.kind == "multiclass":  # one fused kernel: ignore_index drops unknown labels
            total = F.cross_entropy(output.float(), y, ignore_index=MISSING, reduction="sum")
            return total / (y != MISSING).sum().clamp_min(1)
        known = self.known(y)
        output = output.reshape(y.shape).float()
        safe_y = torch.where(known, y, torch.zeros_like(y))
        if self.kind == "regression":
            terms = (output - safe_y).pow(2)
        else:
            terms = F.binary_cross_entropy_with_logits(output, safe_y, reduction="none")
        return terms[known].sum() / known.sum().clamp_min(1)

    def _check_output(self, output: Tensor, y: Tensor) -> None:
        fits = (output.dim() == 2 and output.shape == (len(y), self.out_dim)) if self.kind == "multiclass" else (
            len(output) == len(y) and output.numel() == y.numel())
        if not fits:
            raise TaskshareError(f"task {self.name!r}: the model gives outputs of shape {tuple(output.shape)} for "
                                 f"{len(y)} targets; expected ({len(y)}, {self.out_dim}) (is the head sized for this task?)")

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        """All of the kind's metrics over known labels (multilabel: see evaluate/multilabel.py)."""
        y = self.prepare_target(y)
        known = self.known(y)
        if self.kind == "multiclass":
            return compute_metrics(self.metric_names, output[known].float(), y[known])
        output = output.reshape(y.shape).float()
        if self.kind == "regression":      # per output over its known entries, then over outputs
            return regression_metrics(self.metric_names, output, y, known)
        if self.kind == "multilabel":      # per label over its known entries, then the macro mean
            from .evaluate.multilabel import multilabel_metrics
            return multilabel_metrics(self.metric_names, output, y, known)
        return compute_metrics(self.metric_names, output[known], y[known])

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "num_classes": self.num_classes,
                "num_outputs": self.num_outputs, "metric": self.metric}
