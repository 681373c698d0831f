"""Dense prediction tasks: one prediction per pixel, for encoder-decoder models.

- segmentation: per-pixel classes; outputs (batch, C, H, W) logits, labels (batch, H, W) integers with
  `ignore_index` (default -1) for unlabelled pixels; cross-entropy over labelled pixels; mIoU (selects
  models) and pixel accuracy.
- depth: per-pixel regression; outputs (batch, 1, H, W) or (batch, H, W), targets (batch, H, W) with
  NaN for pixels without a measurement; masked L1 (the usual depth loss); absolute and relative error.
- normals: surface normals; outputs and targets (batch, 3, H, W), targets unit length, NaN or an
  all-zero vector where unknown; loss 1 - cosine between the normalised prediction and the target;
  mean and median angle (degrees) and the share of pixels within 11.25, 22.5 and 30 degrees.

The loss averages over known pixels of the batch and is exactly zero (with a graph) when none is
known, as for the other kinds. `size` (H, W): the heads upsample to it, so they decode to the input
resolution whatever the trunk's stride.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import TaskshareError
from .evaluate.dense import DENSE_METRICS
from .tasks import Task

DENSE_KINDS = ("segmentation", "depth", "normals")
DENSE_DEFAULT_METRICS = {
    "segmentation": ["miou", "pixel_accuracy"],
    "depth": ["abs_err", "rel_err"],
    "normals": ["mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"],
}


class DenseHead(nn.Module):
    """conv 3x3 -> ReLU -> conv 1x1 to the task's channels, then bilinear upsampling to `size`."""

    def __init__(self, in_channels: int, out_channels: int, size: tuple[int, int] | None, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(in_channels, 16)
        self.body = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden, out_channels, 1))
        self.size = tuple(size) if size is not None else None

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 4:
            raise TaskshareError(f"a dense head needs (batch, channels, H, W) features, got shape {tuple(z.shape)}")
        out = self.body(z)
        if self.size is not None and tuple(out.shape[2:]) != self.size:
            out = F.interpolate(out, size=self.size, mode="bilinear", align_corners=False)
        return out


@dataclass(frozen=True)
class DenseTask(Task):
    """A per-pixel task (kind: segmentation | depth | normals); see the module's notes."""

    kind: str = "segmentation"
    ignore_index: int = -1
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TaskshareError(f"task name must be a non-empty string, got {self.name!r}")
        if self.kind not in DENSE_KINDS:
            raise TaskshareError(f"task {self.name!r}: dense kind {self.kind!r} is not one of {DENSE_KINDS}")
        if self.kind == "segmentation" and (not isinstance(self.num_classes, int) or self.num_classes < 2):
            raise TaskshareError(f"task {self.name!r}: segmentation needs num_classes >= 2, got {self.num_classes!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise TaskshareError(f"task {self.name!r}: size must be (H, W) of positive integers, got {self.size!r}")
        if self.metric is not None and self.metric not in self.metric_names:
            raise TaskshareError(f"task {self.name!r}: metric {self.metric!r} does not fit a {self.kind} task; "
                                 f"expected one of {self.metric_names}")

    @property
    def out_dim(self) -> int:
        return {"segmentation": int(self.num_classes or 0), "depth": 1, "normals": 3}[self.kind]

    @property
    def metric_names(self) -> list[str]:
        return list(DENSE_DEFAULT_METRICS[self.kind])

    @property
    def higher_is_better(self) -> bool:
        return DENSE_METRICS[self.main_metric].higher_is_better

    def make_head(self, in_features: int) -> nn.Module:
        return DenseHead(in_features, self.out_dim, self.size)

    # ---- labels ---------------------------------------------------------------------------------
    def prepare_target(self, y: Tensor) -> Tensor:
        y = torch.as_tensor(y)
        return y.long() if self.kind == "segmentation" else y.float()

    def known(self, y: Tensor) -> Tensor:
        """Per pixel (batch, H, W): labelled, measured, or a finite non-zero normal."""
        if self.kind == "segmentation":
            return y != self.ignore_index
        if self.kind == "depth":
            return torch.isfinite(y)
        return torch.isfinite(y).all(1) & (y.abs().sum(1) > 0)

    def check_labels(self, y: Tensor, where: str = "training data") -> None:
        y = self.prepare_target(y)
        want = 4 if self.kind == "normals" else 3
        if y.dim() != want or (self.kind == "normals" and y.shape[1] != 3):
            shape = "(N, 3, H, W)" if self.kind == "normals" else "(N, H, W)"
            raise TaskshareError(f"task {self.name!r}: {where} has targets of shape {tuple(y.shape)}; expected {shape}")
        if self.kind == "segmentation":
            values = y[self.known(y)]
            bad = values[(values < 0) | (values >= self.out_dim)]
            if len(bad):
                raise TaskshareError(f"task {self.name!r}: {where} has pixel label {int(bad[0])}; expected integers "
                                     f"in [0, {self.out_dim - 1}] or {self.ignore_index} for unlabelled")
        elif torch.isinf(y).any():
            raise TaskshareError(f"task {self.name!r}: {where} has an infinite target; expected finite or NaN")

    # ---- loss and metrics -----------------------------------------------------------------------
    def _pixels(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(known pixels, channels) outputs and their targets."""
        y = self.prepare_target(y)
        if self.kind == "depth" and output.dim() == 4 and output.shape[1] == 1:
            output = output[:, 0]
        expected = (len(y), self.out_dim, *y.shape[-2:]) if self.kind != "depth" else tuple(y.shape)
        if tuple(output.shape) != expected:
            raise TaskshareError(f"task {self.name!r}: the model gives outputs of shape {tuple(output.shape)}; "
                                 f"expected {expected} (does the head decode to the targets' resolution?)")
        known = self.known(y)
        if self.kind == "depth":
            return output[known].float(), y[known]
        if self.kind == "segmentation":
            return output.movedim(1, -1)[known].float(), y[known]
        return output.movedim(1, -1)[known].float(), y.movedim(1, -1)[known]

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        out, target = self._pixels(output, y)
        if len(target) == 0:
            return output.sum() * 0.0
        if self.kind == "segmentation":
            return F.cross_entropy(out, target)
        if self.kind == "depth":
            return (out - target).abs().mean()
        return (1 - F.cosine_similarity(out, target, dim=-1, eps=1e-12)).mean()

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        out, target = self._pixels(output, y)
        return {name: DENSE_METRICS[name].fn(out, target) for name in self.metric_names}

    def describe(self) -> dict:
        return {**super().describe(), "ignore_index": self.ignore_index, "size": self.size}
