from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("pcgrad")
@balancer_dataclass
class PCGrad(Balancer):
    """PCGrad (Yu et al., NeurIPS 2020): each task gradient, in turn, drops its component along every
    other task gradient it conflicts with (taken in random order), and the results are summed. Done in
    the Gramian's coordinates: each projected gradient is tracked as a combination of the originals, so
    the cost is O(T^3) on the T x T Gramian instead of O(T^2 P) on the parameters."""

    name = "pcgrad"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        def drop_conflict(c: Tensor, i: int, j: int) -> None:
            dot = c @ gramian[:, j]
            if dot < 0:
                c[j] -= dot / gramian[j, j].clamp_min(1e-30)

        return adjust_in_turn(gramian, drop_conflict)


def adjust_in_turn(gramian: Tensor, adjust: Callable[[Tensor, int, int], None]) -> Tensor:
    """The loop PCGrad and GradVac share, in the Gramian's coordinates: each task i, in turn, starts
    from its own gradient (coefficients e_i) and meets every other task j in a fresh random order,
    `adjust(c, i, j)` changing its coefficients c in place; the sum of the adjusted combinations."""
    T = gramian.shape[0]
    total = gramian.new_zeros(T)
    for i in range(T):
        c = torch.zeros(T, dtype=gramian.dtype, device=gramian.device)
        c[i] = 1.0
        for j in torch.randperm(T).tolist():
            if j != i:
                adjust(c, i, j)
        total += c
    return total
