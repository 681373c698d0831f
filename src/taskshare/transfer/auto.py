from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy
from .finetune import Finetune
from .gradual_unfreeze import GradualUnfreeze
from .linear_probe import LinearProbe
from .lp_ft import LPFT
from .scratch import Scratch


@STRATEGIES.register("auto")
@dataclass
class Auto(Strategy):
    """Picks a strategy on evidence (cross-validation or a validation split), a size rule breaking ties.

    The note says what it chose, on what evidence and how sure it was.

    Rule (labels per class = the smallest class's count in the training split):
      - target at least as large as the source: finetune at the full rate (the pretrained weights
        are only an initialisation; little is to be preserved);
      - up to `probe_below` labels per class: linear_probe (too few labels to move the trunk safely);
      - up to `finetune_from`: lp_ft (a trained head first, then gentle fine-tuning);
      - more: finetune at the full rate.
    Evidence (`confirm` not False): scratch is always a candidate. Where the validation split has at
    least `confirm_min_val` labels per class, every candidate trains once and the best on validation
    is kept. Where it has fewer, one split is too noisy to choose by (5 labels per class: one example
    is 20 points), so candidates are scored by stratified `folds`-fold cross-validation over train +
    validation together, repeated up to `repeats` times while the choice is not yet clearly above
    scratch (later repeats only for candidates still in contention); a candidate whose mean fold score is below scratch's by more than the standard error
    of their paired fold differences is never chosen; candidates within that error of the best are
    a tie, which the rule breaks; the choice is then retrained on all the labelled data for the
    median number of epochs the folds found best. `confirm=False` applies the rule alone.
    """

    name = "auto"
    probe_below: int = 30
    finetune_from: int = 1000
    confirm: bool | None = None       # None or True: decide from evidence; False: the size rule alone
    confirm_min_val: int = 50         # validation labels per class from which one split is trusted
    folds: int = 3                    # cross-validation folds where validation is smaller (cost: folds x candidates)
    repeats: int = 2                  # at most this many repeats of the folds, each reshuffled

    def __post_init__(self) -> None:
        if self.folds < 2 or self.repeats < 1:
            raise TaskshareError(f"auto: folds must be >= 2 and repeats >= 1, got folds={self.folds!r}, "
                                 f"repeats={self.repeats!r}")

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
        return self.confirm is not False

    def cross_validates(self, facts: DataFacts) -> bool:
        """Too few validation labels per class to trust one split (classification only)."""
        val = facts.val_labels_per_class
        return val is not None and val < self.confirm_min_val and not self.large(facts)

    def large(self, facts: DataFacts) -> bool:
        return (facts.source_size is not None and facts.train_size >= facts.source_size) or (
            facts.labels_per_class is not None and facts.labels_per_class >= self.finetune_from)

    def candidates(self, facts: DataFacts) -> list[Strategy]:
        if self.large(facts):
            return [Finetune(trunk_lr_scale=1.0), Scratch()]
        if self.cross_validates(facts):
            # folds x candidates trainings: frozen, probe-then-tune, staged unfreezing and no transfer
            # (full-rate fine-tuning is the worst transfer option at this size on every benchmark)
            return [LinearProbe(), LPFT(), GradualUnfreeze(), Scratch()]
        return [LinearProbe(), LPFT(), GradualUnfreeze(), Finetune(trunk_lr_scale=0.1), Finetune(trunk_lr_scale=1.0),
                Scratch()]

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return self.resolve(facts)[0].stages(n_groups, facts)
