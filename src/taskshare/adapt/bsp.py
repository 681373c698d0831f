from __future__ import annotations

import torch
from torch import Tensor

from .base import ADAPTERS, method_dataclass
from .dann import DANN


def batch_spectral_penalty(source: Tensor, target: Tensor, k: int = 1) -> Tensor:
    """BSP (Chen et al., ICML 2019): the sum of the k largest squared singular values of the source and
    of the target feature matrices."""
    s = torch.linalg.svdvals(source.float())[:k]
    t = torch.linalg.svdvals(target.float())[:k]
    return s.pow(2).sum() + t.pow(2).sum()


@ADAPTERS.register("bsp")
@method_dataclass
class BSP(DANN):
    """DANN + batch spectral penalization (Chen et al., ICML 2019): adversarial alignment inflates the
    few largest singular directions of the features at the expense of discriminability; penalising them
    (times `penalty`, the paper's 1e-4) keeps the other directions alive."""

    name = "bsp"
    penalty: float = 1e-4
    k: int = 1

    def loss(self, source, target, source_logits, target_logits, progress):
        return super().loss(source, target, source_logits, target_logits, progress) + \
            self.penalty * batch_spectral_penalty(source, target, self.k)
