from dataclasses import dataclass

from ..models import layer_decay_scales
from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("layer_decay")
@dataclass
class LayerDecay(Strategy):
    """Discriminative learning rates (Howard & Ruder 2018; BEiT-style layer decay): group i from the
    output trains at lr * decay**i, so early, general layers move least."""

    name = "layer_decay"
    decay: float = 0.5

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return [Stage("layer_decay", lr_scales=layer_decay_scales(n_groups, self.decay))]
