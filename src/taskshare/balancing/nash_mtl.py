from __future__ import annotations

from torch import Tensor

from ._qp import solve_power_equation
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("nash_mtl")
@balancer_dataclass
class NashMTL(Balancer):
    """Nash-MTL (Navon et al., ICML 2022): the Nash bargaining solution between tasks, the weights
    alpha > 0 with (G G^T alpha)_i = 1 / alpha_i, so every task's share of the update is inversely
    proportional to its weight. Solved exactly here (a convex problem, by Newton steps), where the
    paper's implementation takes a few concave-convex iterations every few steps."""

    name = "nash_mtl"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        return solve_power_equation(gramian, 1.0)
