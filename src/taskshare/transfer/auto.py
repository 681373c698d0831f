from dataclasses import dataclass

from .base import STRATEGIES, DataFacts, Stage, Strategy
from .finetune import Finetune
from .gradual_unfreeze import GradualUnfreeze
from .linear_probe import LinearProbe
from .lp_ft import LPFT
from .scratch import Scratch


@STRATEGIES.register("auto")
@dataclass
class Auto(Strategy):
    """Picks a strategy by a stated rule from data sizes, or by a validation sweep where validation
    is large enough to trust; reports what it chose and why.

    Rule (labels per class = the smallest class's count in the training split):
      - target at least as large as the source: finetune at the full rate (the pretrained weights
        are only an initialisation; little is to be preserved);
      - up to `probe_below` labels per class: linear_probe (too few labels to move the trunk safely);
      - up to `finetune_from`: lp_ft (a trained head first, then gentle fine-tuning);
      - more: finetune at the full rate.
    Sweep: every candidate trains with the full budget and the best on validation is kept (no
    retraining); scratch is always a candidate, so transfer is kept only where validation says it
    helps. `confirm=None` sweeps whenever the validation set has at least `confirm_min_val` labels
    per class (with a large target only fine-tuning and scratch compete); True always sweeps, False
    never does. MNIST-1D showed why both are needed: with 5 labels per class the validation set is
    too small to choose by, while the best choice at 20-100 labels per class depends on how linearly
    separable the trunk's features are, and with a target as large as the source whether
    pretraining helps at all, which sizes alone cannot tell.
    """

    name = "auto"
    probe_below: int = 30
    finetune_from: int = 1000
    confirm: bool | None = None
    confirm_min_val: int = 20

    def resolve(self, facts: DataFacts) -> tuple[Strategy, str]:
        """The rule's choice and its reason."""
        lpc = facts.labels_per_class
        if facts.source_size is not None and facts.train_size >= facts.source_size:
            return Finetune(trunk_lr_scale=1.0), (
                f"target has {facts.train_size} training examples, at least the source's {facts.source_size}")
        if lpc is None:
            return LPFT(), "no class counts (not a classification task): LP-FT is the safe middle"
        if lpc <= self.probe_below:
            return LinearProbe(), f"{lpc} labels per class <= {self.probe_below}: too few to move the trunk"
        if lpc < self.finetune_from:
            return LPFT(), f"{self.probe_below} < {lpc} labels per class < {self.finetune_from}"
        return Finetune(trunk_lr_scale=1.0), f"{lpc} labels per class >= {self.finetune_from}"

    def should_sweep(self, facts: DataFacts) -> bool:
        if self.confirm is not None:
            return self.confirm
        val = facts.val_labels_per_class
        return val is not None and val >= self.confirm_min_val

    def large(self, facts: DataFacts) -> bool:
        return (facts.source_size is not None and facts.train_size >= facts.source_size) or (
            facts.labels_per_class is not None and facts.labels_per_class >= self.finetune_from)

    def candidates(self, facts: DataFacts) -> list[Strategy]:
        if self.large(facts):
            return [Finetune(trunk_lr_scale=1.0), Scratch()]
        return [LinearProbe(), LPFT(), GradualUnfreeze(), Finetune(trunk_lr_scale=0.1), Finetune(trunk_lr_scale=1.0),
                Scratch()]

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return self.resolve(facts)[0].stages(n_groups, facts)
