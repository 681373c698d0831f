from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy
from .probe_stage import SOLVERS


def check_solver(value: str, name: str) -> None:
    if value not in SOLVERS:
        raise TaskshareError(f"{name} must be one of {SOLVERS}, got {value!r}")


@STRATEGIES.register("linear_probe")
@dataclass
class LinearProbe(Strategy):
    """Frozen pretrained trunk, new head only. Trunk outputs are computed once and cached unless
    inputs are augmented. solver="convex" (the default) solves the L2-regularised head exactly with
    the strength chosen on validation (transfer/convex_probe.py); "sgd" trains it with the loop, as
    does any stage the solver cannot take (augmented inputs, a non-linear head, train_frozen_bn)."""

    name = "linear_probe"
    solver: str = "convex"

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        check_solver(self.solver, "linear_probe: solver")
        return [Stage("probe", train_last=1, solver=self.solver)]
