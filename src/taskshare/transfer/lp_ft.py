from dataclasses import dataclass

from .base import STRATEGIES, DataFacts, Stage, Strategy, check_fraction
from .linear_probe import check_solver


@STRATEGIES.register("lp_ft")
@dataclass
class LPFT(Strategy):
    """LP-FT (Kumar et al. 2022): a linear probe first, so fine-tuning starts from a good head and
    distorts the pretrained features less; then everything trains, the trunk at `trunk_lr_scale`, under
    the probe's head shrunk to a fresh head's scale with its predictions kept (`temper_head`; without
    it a solved head's large weights turned Adam's trunk steps into large swings of the logits:
    transfer/head_temper.py)."""

    name = "lp_ft"
    probe_fraction: float = 0.5
    trunk_lr_scale: float = 0.1
    probe_solver: str = "convex"   # the probe solved exactly (see linear_probe), or "sgd"
    temper_head: bool = True       # False: the tuning stage starts from the probe's head as solved

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        check_fraction(self.probe_fraction, "lp_ft: probe_fraction")
        check_solver(self.probe_solver, "lp_ft: probe_solver")
        return [Stage("probe", train_last=1, epochs_fraction=self.probe_fraction, solver=self.probe_solver),
                Stage("finetune", lr_scales=[self.trunk_lr_scale] * (n_groups - 1) + [1.0],
                      epochs_fraction=1 - self.probe_fraction, temper_head=self.temper_head)]
