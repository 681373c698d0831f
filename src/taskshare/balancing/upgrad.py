from __future__ import annotations

import torch
from torch import Tensor

from ._qp import min_quadratic_lower_bounded
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
        T = gramian.shape[0]
        # a relative ridge keeps the QPs well posed when gradients are (nearly) collinear
        K = gramian + 1e-10 * gramian.trace().clamp_min(1e-30) * torch.eye(T, dtype=gramian.dtype, device=gramian.device)
        eye = torch.eye(T, dtype=gramian.dtype, device=gramian.device)
        return torch.stack([min_quadratic_lower_bounded(K, eye[i]) for i in range(T)]).mean(0)
