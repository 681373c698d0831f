from dataclasses import dataclass

from ..errors import TaskshareError
from ..models import layer_decay_scales
from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("gradual_unfreeze")
@dataclass
class GradualUnfreeze(Strategy):
    """ULMFiT-style (Howard & Ruder 2018): train the head, then unfreeze one more group per stage,
    from the output down, until everything trains; optional discriminative rates (`decay` < 1).
    `max_stages` bounds the number of stages for deep models (groups are then unfrozen in chunks)."""

    name = "gradual_unfreeze"
    decay: float = 1.0
    max_stages: int = 6

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if self.max_stages < 2:
            raise TaskshareError(f"gradual_unfreeze: max_stages must be >= 2, got {self.max_stages!r}")
        n_stages = min(n_groups, self.max_stages)
        counts = sorted({max(1, round(n_groups * (i + 1) / n_stages)) for i in range(n_stages)})
        counts[0] = 1
        scales = layer_decay_scales(n_groups, self.decay)
        return [Stage(f"unfreeze_{c}", train_last=c, lr_scales=scales, epochs_fraction=1 / len(counts))
                for c in counts]
