from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy


SLOW_TRUNK = 1 / 3   # the trunk's scale below full_rate_from labels per class (why: Finetune's docstring)


@STRATEGIES.register("finetune")
@dataclass
class Finetune(Strategy):
    """Train everything from the pretrained weights; the trunk's learning rate is the head's times
    `trunk_lr_scale` (a smaller rate keeps more of what was pretrained). Unset, the scale follows the
    data: the full rate from `full_rate_from` labels per class (or a target as large as the source),
    where there is enough data to move the trunk and a slow trunk only costs accuracy (9 points
    against a plain full-rate loop with all labels, issue 13), and a third below that: the trunk then
    moves at 1e-3 under the default head rate of 3e-3, the rate of a plain AdamW loop, never slower.
    At 0.1 a source whose features do not fit the target held the trunk back: 7.5 points below that
    plain loop at 20 labels per class (MNIST 0-4 -> 5-9, benchmarks/finetune_vs_adamw.py), while a
    third lost nothing where the source fits (MNIST-1D even -> odd digits: 59.0 against 57.9)."""

    name = "finetune"
    trunk_lr_scale: float | None = None
    full_rate_from: int = 300

    def scale(self, facts: DataFacts) -> float:
        if self.trunk_lr_scale is not None:
            return self.trunk_lr_scale
        large_source = facts.source_size is not None and facts.train_size >= facts.source_size
        many = facts.labels_per_class is not None and facts.labels_per_class >= self.full_rate_from
        return 1.0 if large_source or many else SLOW_TRUNK

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if self.trunk_lr_scale is not None and self.trunk_lr_scale <= 0:
            raise TaskshareError(f"finetune: trunk_lr_scale must be > 0, got {self.trunk_lr_scale!r}")
        return [Stage("finetune", lr_scales=[self.scale(facts)] * (n_groups - 1) + [1.0])]
