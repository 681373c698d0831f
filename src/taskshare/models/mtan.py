"""Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019): one shared trunk; each task owns a
soft attention mask per trunk stage that picks, element by element, which shared features it uses.
The mask at stage i reads the stage's shared output and the task's attended features from stage i-1,
so each task's path is refined stage by stage while every task trains the shared trunk."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import TaskshareError
from ..tasks import Task
from .heads import TaskModules, check_tasks, requested
from .sharing import SHARING, dry_shapes, pointwise, task_heads


class Attention(nn.Module):
    """mask = sigmoid(P2 relu(P1 [shared, adapt(previous)])), attended = mask * shared; P1, P2 and adapt
    are per-position linear maps (1x1 convolutions on images, Linear on vectors). The previous stage's
    features are brought to this stage's positions by adaptive average pooling (the paper pools with
    its encoder's strides; pooling to the shape covers any trunk)."""

    def __init__(self, channels: int, previous: int | None, dims: int):
        super().__init__()
        self.adapt = pointwise(previous, channels, dims) if previous is not None else None
        width = 2 * channels if previous is not None else channels
        self.mask = nn.Sequential(pointwise(width, channels, dims), nn.ReLU(), pointwise(channels, channels, dims),
                                  nn.Sigmoid())

    def forward(self, shared: Tensor, previous: Tensor | None) -> Tensor:
        if self.adapt is None:
            return self.mask(shared) * shared
        if previous.dim() > 2 and previous.shape[2:] != shared.shape[2:]:
            previous = F.adaptive_avg_pool2d(previous, shared.shape[2:]) if previous.dim() == 4 else \
                F.adaptive_avg_pool1d(previous, shared.shape[2:])
        return self.mask(torch.cat([shared, self.adapt(previous)], 1)) * shared


class MTAN(nn.Module):
    """`trunk`: an nn.Sequential; every child is a stage that gets one attention module per task. Stage
    outputs must be (batch, features) or (batch, channels, *positions) with the same number of
    dimensions throughout (put a final flatten/pool in the heads' side, or keep the trunk 2-D)."""

    def __init__(self, trunk: nn.Sequential, tasks: Sequence[Task], example: Tensor):
        super().__init__()
        if not isinstance(trunk, nn.Sequential):
            raise TaskshareError(f"mtan needs an nn.Sequential trunk (its children are the stages), got "
                                 f"{type(trunk).__name__}")
        self.tasks = {t.name: t for t in check_tasks(tasks)}
        self.trunk = trunk
        shapes = dry_shapes(list(trunk), example)
        dims = {len(s) for s in shapes}
        if len(dims) != 1 or next(iter(dims)) not in (2, 3, 4):
            raise TaskshareError(f"mtan: stage outputs have shapes {shapes}; expected (batch, features) or "
                                 f"(batch, channels, *positions) of one rank throughout")
        rank = next(iter(dims))
        channels = [s[1] for s in shapes]
        self.attention = TaskModules({t: nn.ModuleList([Attention(c, channels[i - 1] if i else None, rank)
                                                          for i, c in enumerate(channels)]) for t in self.tasks})
        self.heads = task_heads(list(self.tasks.values()), channels[-1])

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        names = requested(self.heads, tasks)
        attended: dict[str, Tensor | None] = {t: None for t in names}
        h = x
        for i, stage in enumerate(self.trunk):
            h = stage(h)
            attended = {t: self.attention[t][i](h, attended[t]) for t in names}
        return {t: self.heads[t](attended[t]) for t in names}


@SHARING.register("mtan")
def _build(trunk_factory, tasks, example):
    return MTAN(trunk_factory(), tasks, example)
