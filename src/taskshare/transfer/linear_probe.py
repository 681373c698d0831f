from dataclasses import dataclass

from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("linear_probe")
@dataclass
class LinearProbe(Strategy):
    """Frozen pretrained trunk, new head only. Trunk outputs are computed once and cached unless
    inputs are augmented."""

    name = "linear_probe"

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return [Stage("probe", train_last=1)]
