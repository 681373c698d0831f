from __future__ import annotations

import torch
from torch import Tensor

from ._qp import min_quadratic_lower_bounded
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("dualproj")
@balancer_dataclass
class DualProj(Balancer):
    """DualProj (Quinton & Rey, 2024): the mean gradient projected onto the dual cone of the task
    gradients, in weight space argmin_{v >= 1/T} v^T K v: the closest non-conflicting update to the
    mean (the mean itself when nothing conflicts)."""

    name = "dualproj"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        eye = torch.eye(T, dtype=gramian.dtype, device=gramian.device)
        K = gramian + 1e-10 * gramian.trace().clamp_min(1e-30) * eye
        return min_quadratic_lower_bounded(K, gramian.new_full((T,), 1.0 / T))
