from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._qp import ScaledGramian, min_quadratic_lower_bounded
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("upgrad")
@balancer_dataclass
class UPGrad(Balancer):
    """UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024): project each
    task gradient onto the dual cone of all task gradients (in weight space: argmin_{v >= e_i} v^T K v)
    and average the projections. The update never conflicts with a task gradient and equals the mean
    gradient when no pair conflicts."""

    name = "upgrad"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        scaled = ScaledGramian(gramian)   # converted once for the T projections
        rows = [scaled.solve(e, simplex=False) for e in np.eye(gramian.shape[0])]
        if all(r is not None for r in rows):
            return torch.from_numpy(np.mean(rows, 0)).to(gramian)
        lower = torch.eye(gramian.shape[0], dtype=gramian.dtype, device=gramian.device)
        return torch.stack([min_quadratic_lower_bounded(gramian, row) for row in lower]).mean(0)
