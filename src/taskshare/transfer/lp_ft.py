from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy, check_fraction
from .linear_probe import check_solver


@STRATEGIES.register("lp_ft")
@dataclass
class LPFT(Strategy):
    """LP-FT (Kumar et al. 2022): a linear probe first, so fine-tuning starts from a good head and
    distorts the pretrained features less; then everything trains, the trunk at `trunk_lr_scale`, under
    the probe's head shrunk to a fresh head's scale with its predictions kept where the trunk has
    BatchNorm (`temper_head`; on MobileNetV2 the solved head's large weights made the tuning stage
    fall below its probe: transfer/head_temper.py)."""

    name = "lp_ft"
    probe_fraction: float = 0.5
    trunk_lr_scale: float = 0.1
    probe_solver: str = "convex"   # the probe solved exactly (see linear_probe), or "sgd"
    temper_head: bool | None = None   # None: temper where the trunk has BatchNorm (measured to help there
                                      # only); True / False: always / never

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        check_fraction(self.probe_fraction, "lp_ft: probe_fraction")
        check_solver(self.probe_solver, "lp_ft: probe_solver")
        if self.temper_head not in (None, True, False):
            raise TaskshareError(f"lp_ft: temper_head must be true, false or null (BatchNorm trunks), "
                                 f"got {self.temper_head!r}")
        return [Stage("probe", train_last=1, epochs_fraction=self.probe_fraction, solver=self.probe_solver),
                Stage("finetune", lr_scales=[self.trunk_lr_scale] * (n_groups - 1) + [1.0],
                      epochs_fraction=1 - self.probe_fraction, temper_head=self.temper_head)]
