from __future__ import annotations

import torch
from torch import Tensor

from ._qp import min_quadratic_lower_bounded, with_ridge
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
        K = with_ridge(gramian)
        eye = torch.eye(gramian.shape[0], dtype=gramian.dtype, device=gramian.device)
        return torch.stack([min_quadratic_lower_bounded(K, row) for row in eye]).mean(0)
