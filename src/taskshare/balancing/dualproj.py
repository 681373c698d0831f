from __future__ import annotations

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
        return min_quadratic_lower_bounded(gramian, gramian.new_full((T,), 1.0 / T))
