from __future__ import annotations

import torch
from torch import Tensor

from ..errors import TaskshareError
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("graddrop")
@balancer_dataclass
class GradDrop(Balancer):
    """GradDrop (Chen et al., NeurIPS 2020, "Just Pick a Sign"): per coordinate, the sign purity
    P = (1 + sum_t g_t / sum_t |g_t|) / 2; with U ~ Uniform(0, 1) drawn per coordinate, keep only the
    positive task components where P > U and only the negative ones elsewhere, then sum. `leak`
    (0 to 1) lets that share of every gradient through unmasked. Meant for the shared features
    (representation level), where the paper applies it; it works on parameters as well."""

    name = "graddrop"
    needs = "gradients"
    leak: float = 0.0

    def setup(self) -> None:
        if not 0 <= self.leak <= 1:
            raise TaskshareError(f"graddrop: leak must be in [0, 1], got {self.leak!r}")

    def combine(self, grads: Tensor) -> Tensor:
        purity = 0.5 * (1 + grads.sum(0) / grads.abs().sum(0).clamp_min(1e-30))
        keep_positive = purity > torch.rand(purity.shape, dtype=purity.dtype, device=purity.device)
        mask = torch.where(keep_positive, grads > 0, grads < 0).to(grads.dtype)
        return ((self.leak + (1 - self.leak) * mask) * grads).sum(0)
