from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("finetune")
@dataclass
class Finetune(Strategy):
    """Train everything from the pretrained weights; the trunk's learning rate is the head's times
    `trunk_lr_scale` (a smaller rate keeps more of what was pretrained)."""

    name = "finetune"
    trunk_lr_scale: float = 0.1

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if self.trunk_lr_scale <= 0:
            raise TaskshareError(f"finetune: trunk_lr_scale must be > 0, got {self.trunk_lr_scale!r}")
        return [Stage("finetune", lr_scales=[self.trunk_lr_scale] * (n_groups - 1) + [1.0])]
