from dataclasses import dataclass

from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("scratch")
@dataclass
class Scratch(Strategy):
    """The baseline: same architecture, random initial weights, everything trained at the base rate.
    Every comparison includes it, so negative transfer shows."""

    name = "scratch"
    reinit = True

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return [Stage("scratch")]
