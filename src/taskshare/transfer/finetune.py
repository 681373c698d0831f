from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy


SLOW = 1 / 3   # trunk and head's scale below full_rate_from labels per class (why: Finetune's docstring)


@STRATEGIES.register("finetune")
@dataclass
class Finetune(Strategy):
    """Train everything from the pretrained weights: the trunk at the configured rate times
    `trunk_lr_scale`, the new head at it times `head_lr_scale` (a smaller rate keeps more of what was
    pretrained). Unset, the scales follow the data: the full rate for both from `full_rate_from`
    labels per class (or a target as large as the source), where there is enough data to move the
    trunk and a slow trunk only costs accuracy (9 points against a plain full-rate loop with all
    labels, issue 13), and a third for both below that: under the default rate of 3e-3 every
    parameter then moves at 1e-3, a plain AdamW loop's rate. At 0.1 a trunk whose source does not fit
    the target was held back (7.5 points below that loop at 20 labels per class, MNIST 0-4 -> 5-9);
    a head at the full 3e-3 over a trunk at 1e-3 lost 1-2.5 points to the loop at 20 labels per class
    and on noisy digits (benchmarks/finetune_vs_adamw.py), and the schedule, warm-up, clipping and
    weight decay, changed one at a time over 6 seeds, each moved the gap by less than the seeds did.
    Setting `trunk_lr_scale` alone keeps the head at the full rate (the scale is then relative to it)."""

    name = "finetune"
    trunk_lr_scale: float | None = None
    head_lr_scale: float | None = None
    full_rate_from: int = 300

    def full_rate(self, facts: DataFacts) -> bool:
        large_source = facts.source_size is not None and facts.train_size >= facts.source_size
        many = facts.labels_per_class is not None and facts.labels_per_class >= self.full_rate_from
        return large_source or many

    def scale(self, facts: DataFacts) -> float:
        """The trunk's scale of the configured rate."""
        if self.trunk_lr_scale is not None:
            return self.trunk_lr_scale
        return 1.0 if self.full_rate(facts) else SLOW

    def head_scale(self, facts: DataFacts) -> float:
        """The head's scale of the configured rate."""
        if self.head_lr_scale is not None:
            return self.head_lr_scale
        return 1.0 if self.trunk_lr_scale is not None or self.full_rate(facts) else SLOW

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        for name, value in (("trunk_lr_scale", self.trunk_lr_scale), ("head_lr_scale", self.head_lr_scale)):
            if value is not None and value <= 0:
                raise TaskshareError(f"finetune: {name} must be > 0, got {value!r}")
        return [Stage("finetune", lr_scales=[self.scale(facts)] * (n_groups - 1) + [self.head_scale(facts)])]
