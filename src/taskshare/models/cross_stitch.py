"""Cross-stitch networks (Misra et al. 2016): one tower per task; after every stage the towers'
activations are mixed by a learned T x T matrix, so the network learns how much to share per layer."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from .heads import TaskModules, check_tasks, make_heads, requested


class CrossStitch(nn.Module):
    """`trunk` must be an nn.Sequential: each child is a stage, and a cross-stitch unit follows each.
    Unit i computes h'_t = sum_s A_i[t, s] h_s, initialised with `alpha_self` on the diagonal and the
    rest spread evenly (rows sum to 1). Every tower runs on every call, since units need them all."""

    def __init__(self, trunk: nn.Sequential, tasks: Sequence[Task], example: Tensor | None = None,
                 in_features: int | None = None, alpha_self: float = 0.9):
        super().__init__()
        if not isinstance(trunk, nn.Sequential):
            raise TaskshareError(f"cross-stitch needs an nn.Sequential trunk (its children are the stages), "
                                 f"got {type(trunk).__name__}")
        if not 0 < alpha_self <= 1:
            raise TaskshareError(f"alpha_self must be in (0, 1], got {alpha_self!r}")
        self.tasks = {t.name: t for t in check_tasks(tasks)}
        n = len(self.tasks)
        self.towers = TaskModules({name: copy.deepcopy(trunk) for name in self.tasks})
        init = torch.full((n, n), (1 - alpha_self) / max(n - 1, 1))
        init.fill_diagonal_(alpha_self if n > 1 else 1.0)
        self.stitches = nn.ParameterList([nn.Parameter(init.clone()) for _ in range(len(trunk))])
        self.heads = make_heads(list(self.tasks.values()), trunk, example, in_features)

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        names = list(self.towers)
        hs = [x] * len(names)
        for i, unit in enumerate(self.stitches):
            stacked = torch.stack([self.towers[t][i](h) for t, h in zip(names, hs)])  # (T, batch, ...)
            mixed = torch.einsum("ts,s...->t...", unit.to(stacked.dtype), stacked)
            hs = list(mixed.unbind(0))
        out = dict(zip(names, hs))
        return {t: self.heads[t](out[t]) for t in requested(self.heads, tasks)}
