from __future__ import annotations

from torch import Tensor

from ._qp import min_norm_simplex
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("mgda")
@balancer_dataclass
class MGDA(Balancer):
    """MGDA (Désidéri 2012; Sener & Koltun, NeurIPS 2018): the minimum-norm point of the convex hull of
    the task gradients, w = argmin_{w in simplex} ||w @ G||^2, solved exactly over the Gramian. The
    update does not conflict with any task gradient (a zero update at a Pareto-stationary point)."""

    name = "mgda"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        return min_norm_simplex(gramian)
