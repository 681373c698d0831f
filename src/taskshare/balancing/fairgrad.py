from __future__ import annotations

from torch import Tensor

from ..errors import TaskshareError
from ._qp import solve_power_equation
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("fairgrad")
@balancer_dataclass
class FairGrad(Balancer):
    """FairGrad (Ban & Ji, ICML 2024): alpha-fair allocation of the update between tasks, the weights
    w > 0 with G G^T w = w^(-1/alpha). alpha = 1 is proportional fairness (Nash-MTL's solution); larger
    alpha moves toward max-min fairness (the worst task first)."""

    name = "fairgrad"
    needs = "gramian"
    alpha: float = 1.0

    def setup(self) -> None:
        if self.alpha <= 0:
            raise TaskshareError(f"fairgrad: alpha must be > 0, got {self.alpha!r}")

    def weights(self, gramian: Tensor) -> Tensor:
        return solve_power_equation(gramian, 1.0 / self.alpha)
