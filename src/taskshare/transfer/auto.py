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
    """Picks a strategy on evidence (held-out examples, paired), a size rule breaking ties.

    The note says what it chose, on what evidence and how sure it was.

    Rule (labels per class = the smallest class's count in the training split):
      - target at least as large as the source: finetune at the full rate (the pretrained weights
        are only an initialisation; little is to be preserved);
      - up to `probe_below` labels per class: linear_probe (too few labels to move the trunk safely);
      - up to `finetune_from`: lp_ft (a trained head first, then gentle fine-tuning);
      - more: finetune at the full rate.
    Evidence (`confirm` not False): scratch is always a candidate, and every candidate trains on the
    split as given. The decision reads, per validation example, a score that tracks the task's main
    metric (auto_scores.py: whether a class is right; the fraction of labels right; the Brier score
    where the metric, AUROC or F1, has no per-example form; a regression error over the targets'
    spread), and compares each candidate with scratch on the same examples: one standard
    error of the paired difference below scratch is refused; to displace scratch a candidate has to
    lead it by more than a bar that rises with the number of candidates (evidence.above_bar); leaders
    within one standard error of the best are a tie, which the rule breaks. Where that leaves scratch
    on a tie and the standard error of the lead is above `max_se`, a second round swaps the roles:
    the candidates still in contention train on the validation examples and are scored on the
    training ones (as many per class as validation has, the least held out first; by binary label, by
    rarest positive label, or unstratified for regression), so every labelled
    example is held out once; up to `rounds` rounds. A lead that displaced scratch in the first round
    takes that second round too where it rests on so few examples that its standard error (never
    below 0.5 / sqrt(examples)) is above `max_se`: one lucky small split can clear the bar, so such a
    lead must hold on both rounds' examples together. The model kept is the chosen candidate's own
    run on the split as given, early-stopped on its validation, like the fixed strategies': the other
    rounds only add evidence. `confirm=False` applies the rule alone.
    """

    name = "auto"
    probe_below: int = 30
    finetune_from: int = 1000
    confirm: bool | None = None       # None or True: decide from evidence; False: the size rule alone
    max_se: float = 0.02              # standard error of a paired accuracy lead from which one split is trusted
                                      # (below it a second round would not change a decision worth 2 points)
    rounds: int = 2                   # held-out rounds at most: the split, then its swap (cost: one more
                                      # training per candidate still in contention)

    def __post_init__(self) -> None:
        if self.rounds < 1 or not 0 < self.max_se < 1:
            raise TaskshareError(f"auto: rounds must be >= 1 and max_se in (0, 1), got rounds={self.rounds!r}, "
                                 f"max_se={self.max_se!r}")

    def resolve(self, facts: DataFacts) -> tuple[Strategy, str]:
        """The rule's choice and its reason."""
        lpc = facts.labels_per_class
        if facts.source_size is not None and facts.train_size >= facts.source_size:
            return Finetune(trunk_lr_scale=1.0), (
                f"target has {facts.train_size} training examples, at least the source's {facts.source_size}")
        if lpc is None:
            return LPFT(), "no class counts (not a multiclass task): LP-FT is the safe middle"
        if lpc <= self.probe_below:
            return LinearProbe(), f"{lpc} labels per class <= {self.probe_below}: too few to move the trunk"
        if lpc < self.finetune_from:
            return LPFT(), f"{self.probe_below} < {lpc} labels per class < {self.finetune_from}"
        return Finetune(trunk_lr_scale=1.0), f"{lpc} labels per class >= {self.finetune_from}"

    def should_sweep(self, facts: DataFacts) -> bool:
        return self.confirm is not False

    def expected_se(self, facts: DataFacts) -> float | None:
        """The standard error one validation split would give a paired accuracy lead, before training:
        0.5 / sqrt(validation examples), as if candidates disagreed on a quarter of them."""
        if facts.val_labels_per_class is None or not facts.num_classes:
            return None
        return 0.5 / (max(1, facts.val_labels_per_class) * facts.num_classes) ** 0.5

    def small(self, facts: DataFacts) -> bool:
        """Few labels (multiclass): up to `probe_below` per class, with a validation split too small to
        trust one round. Fewer candidates then: each will likely train twice, and full-rate fine-tuning
        is the worst transfer option at this size. Above `probe_below` fine-tuning stays a candidate
        however small validation is: at 851 labels per class on 5 classes (481 validation examples)
        leaving it out cost 3 points against the full-rate finetune (transfer suite, m1d_odd k=all).
        Targets without class counts (binary, multi-label, regression) always get every candidate."""
        if self.large(facts) or facts.labels_per_class is None:
            return False
        se = self.expected_se(facts)
        return facts.labels_per_class <= self.probe_below and (se is None or se > self.max_se)

    def large(self, facts: DataFacts) -> bool:
        return (facts.source_size is not None and facts.train_size >= facts.source_size) or (
            facts.labels_per_class is not None and facts.labels_per_class >= self.finetune_from)

    def candidates(self, facts: DataFacts) -> list[Strategy]:
        if self.large(facts):
            return [Finetune(trunk_lr_scale=1.0), Scratch()]
        if self.small(facts):
            # up to two trainings each: frozen, probe-then-tune, staged unfreezing and no transfer
            return [LinearProbe(), LPFT(), GradualUnfreeze(), Scratch()]
        tune = [Finetune(trunk_lr_scale=1.0)]
        if not Finetune().full_rate(facts):
            tune.insert(0, Finetune())   # the default's slower rates differ from the full rate here
        return [LinearProbe(), LPFT(), GradualUnfreeze(), *tune, Scratch()]

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        return self.resolve(facts)[0].stages(n_groups, facts)
