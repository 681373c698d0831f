from dataclasses import dataclass

from .base import STRATEGIES, DataFacts, Stage, Strategy
from .finetune import Finetune
from .linear_probe import LinearProbe
from .lp_ft import LPFT


@STRATEGIES.register("auto")
@dataclass
class Auto(Strategy):
    """Picks a strategy from data sizes by a stated rule; with `confirm`, the runner also trains the
    rule's neighbours for `sweep_fraction` of the epochs and keeps the best on validation.

    Rule (labels per class = the smallest class's count in the training split):
      - target at least as large as the source: finetune with the trunk at the full rate (the
        pretrained weights are only an initialisation; little is to be preserved);
      - up to `probe_below` labels per class: linear_probe (too few labels to move the trunk safely);
      - up to `finetune_from` labels per class: lp_ft (a trained head first, then gentle fine-tuning);
      - more: finetune with the trunk at the full rate.
    """

    name = "auto"
    probe_below: int = 30
    finetune_from: int = 1000
    confirm: bool = False
    sweep_fraction: float = 0.5

    def resolve(self, facts: DataFacts) -> tuple[Strategy, str]:
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

    def candidates(self, facts: DataFacts) -> list[Strategy]:
        """The rule's choice and its neighbours, for a confirming sweep."""
        return [LinearProbe(), LPFT(), Finetune(trunk_lr_scale=0.1), Finetune(trunk_lr_scale=1.0)]

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return self.resolve(facts)[0].stages(n_groups, facts)
