from __future__ import annotations

import torch
from torch import Tensor

from .base import ADAPTERS, DomainMethod, method_dataclass


def adaptive_feature_norm(features: Tensor, step: float = 1.0) -> Tensor:
    """Stepwise adaptive feature norm (SAFN, Xu et al., ICCV 2019): (||f|| - (||f||.detached + step))^2
    averaged over samples. Its value is always step^2; its gradient grows every norm by `step`."""
    norms = features.float().norm(dim=1)
    return (norms - (norms.detach() + step)).pow(2).mean()


@ADAPTERS.register("afn")
@method_dataclass
class AFN(DomainMethod):
    """AFN (Xu et al., ICCV 2019): target features with small norms carry little information for the
    classifier; enlarging every feature norm step by step (source and target) makes the target
    transferable without any discriminator. The paper's trade-off is 0.05 and its step 1; at step 1 a
    trunk without BatchNorm or dropout grew its feature norms without end (26 -> 1000 in 10 epochs on
    rotated digits) and lost half its source accuracy, so the default step is 0.1."""

    name = "afn"
    default_weight = 0.05
    step: float = 0.1

    def loss(self, source, target, source_logits, target_logits, progress):
        return adaptive_feature_norm(torch.cat([source, target]), self.step)
