"""Soft parameter sharing: one tower per task, parameters pulled together by a distance penalty."""
from __future__ import annotations

import copy
import re
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from .heads import TaskModules, check_tasks, make_heads, requested

DISTANCES = ("mean", "pairwise")


class SoftSharing(nn.Module):
    """Each task gets its own copy of `trunk` (all copies start equal) and its own head. `penalty()`
    returns coupling * distance over the parameters whose names match `layers` (a regex over the
    trunk's parameter names; default every parameter):

      mean:     sum_t ||w_t - mean_s w_s||^2      pairwise: sum_{s<t} ||w_s - w_t||^2

    coupling = 0 gives independent models; a large coupling keeps the towers equal, approaching hard
    sharing. The trainer adds `penalty()` to the loss (fit_multitask does so by itself).
    """

    def __init__(self, trunk: nn.Module, tasks: Sequence[Task], example: Tensor | None = None,
                 in_features: int | None = None, coupling: float = 1e-3, layers: str | None = None,
                 distance: str = "mean"):
        super().__init__()
        if coupling < 0:
            raise TaskshareError(f"soft sharing coupling must be >= 0, got {coupling!r}")
        if distance not in DISTANCES:
            raise TaskshareError(f"soft sharing distance {distance!r}; expected one of {DISTANCES}")
        self.tasks = {t.name: t for t in check_tasks(tasks)}
        self.coupling, self.distance, self.layers = coupling, distance, layers
        self.towers = TaskModules({name: copy.deepcopy(trunk) for name in self.tasks})
        self.heads = make_heads(list(self.tasks.values()), trunk, example, in_features)
        names = [n for n, _ in trunk.named_parameters() if layers is None or re.search(layers, n)]
        if not names:
            raise TaskshareError(f"soft sharing layers {layers!r} match no parameter of the trunk")
        self.coupled_names = names

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        return {t: self.heads[t](self.towers[t](x)) for t in requested(self.heads, tasks)}

    def coupled(self) -> list[list[nn.Parameter]]:
        """For each coupled parameter name, that parameter in every tower."""
        params = {t: dict(tower.named_parameters()) for t, tower in self.towers.items()}
        return [[params[t][n] for t in self.towers] for n in self.coupled_names]

    def penalty(self) -> Tensor:
        ref = next(self.parameters())
        if self.coupling == 0 or len(self.towers) < 2:
            return ref.new_zeros(())
        total = ref.new_zeros(())
        for group in self.coupled():
            stacked = torch.stack(group)
            if self.distance == "mean":
                total = total + (stacked - stacked.mean(0)).pow(2).sum()
            else:  # sum over pairs = T * sum_t ||w_t - mean||^2
                total = total + len(group) * (stacked - stacked.mean(0)).pow(2).sum()
        return self.coupling * total

    def spread(self) -> float:
        """Root-mean-square distance of the towers' coupled parameters from their mean."""
        with torch.no_grad():
            sq, n = 0.0, 0
            for group in self.coupled():
                stacked = torch.stack(group)
                sq += (stacked - stacked.mean(0)).pow(2).sum().item()
                n += stacked.numel()
        return (sq / max(n, 1)) ** 0.5
