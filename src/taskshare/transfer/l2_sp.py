from dataclasses import dataclass

import torch

from ..errors import TaskshareError
from ..models import TrunkHead
from .base import STRATEGIES, DataFacts, Stage, Strategy


def l2_sp_penalty(alpha: float, beta: float):
    """Builds, at the stage's start, alpha/2 * ||w - w0||^2 over the trunk (w0 = its weights now, the
    pretrained ones) + beta/2 * ||w||^2 over the head."""

    def build(model: TrunkHead):
        trunk = [p for p in model.trunk.parameters() if p.requires_grad]
        start = [p.detach().clone() for p in trunk]
        head = [p for p in model.head.parameters() if p.requires_grad]

        def penalty() -> torch.Tensor:
            pull = sum((p - p0).pow(2).sum() for p, p0 in zip(trunk, start))
            shrink = sum(p.pow(2).sum() for p in head)
            return 0.5 * alpha * pull + 0.5 * beta * shrink

        return penalty

    return build


@STRATEGIES.register("l2_sp")
@dataclass
class L2SP(Strategy):
    """L2-SP (Li, Grandvalet & Davoine 2018): fine-tune everything with a penalty pulling the trunk
    toward its pretrained weights (alpha) and a plain L2 on the new head (beta). The trunk gets no
    weight decay toward zero, which would fight the pull, and the head none on top of beta, so the
    penalty is the paper's alone (AdamW's decay added 0.01 to the head's)."""

    name = "l2_sp"
    alpha: float = 0.01
    beta: float = 0.01
    trunk_lr_scale: float = 1.0

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if self.alpha < 0 or self.beta < 0:
            raise TaskshareError(f"l2_sp: alpha and beta must be >= 0, got {self.alpha!r}, {self.beta!r}")
        return [Stage("l2_sp", lr_scales=[self.trunk_lr_scale] * (n_groups - 1) + [1.0],
                      penalty=l2_sp_penalty(self.alpha, self.beta), trunk_weight_decay=0.0,
                      head_weight_decay=0.0)]
