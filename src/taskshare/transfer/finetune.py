from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("finetune")
@dataclass
class Finetune(Strategy):
    """Train everything from the pretrained weights; the trunk's learning rate is the head's times
    `trunk_lr_scale` (a smaller rate keeps more of what was pretrained). Unset, the scale follows the
    data: the full rate from `full_rate_from` labels per class (or a target as large as the source),
    where there is enough data to move the trunk and a slow trunk only costs accuracy (9 points
    against a plain full-rate loop with all labels, issue 13), and 0.1 below that."""

    name = "finetune"
    trunk_lr_scale: float | None = None
    full_rate_from: int = 300

    def scale(self, facts: DataFacts) -> float:
        if self.trunk_lr_scale is not None:
            return self.trunk_lr_scale
        large_source = facts.source_size is not None and facts.train_size >= facts.source_size
        many = facts.labels_per_class is not None and facts.labels_per_class >= self.full_rate_from
        return 1.0 if large_source or many else 0.1

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if self.trunk_lr_scale is not None and self.trunk_lr_scale <= 0:
            raise TaskshareError(f"finetune: trunk_lr_scale must be > 0, got {self.trunk_lr_scale!r}")
        return [Stage("finetune", lr_scales=[self.scale(facts)] * (n_groups - 1) + [1.0])]
