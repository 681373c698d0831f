from __future__ import annotations

import torch
from torch import Tensor

from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("config")
@balancer_dataclass
class ConFIG(Balancer):
    """ConFIG (Liu et al., ICLR 2025, "Towards conflict-free training of physics informed neural
    networks"): the direction with equal positive cosine to every task gradient, v = pinv(U) 1 for the
    unit gradients U, scaled by the sum of the gradients' projections on it. In the Gramian's terms
    a = D^-1 (D^-1 K D^-1)^+ 1 (D the gradient norms) and w = (1^T K a / a^T K a) a."""

    name = "config"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        norms = gramian.diagonal().clamp_min(1e-30).sqrt()
        cosines = gramian / norms.unsqueeze(0) / norms.unsqueeze(1)
        a = torch.linalg.pinv(cosines, hermitian=True) @ gramian.new_ones(len(norms)) / norms
        length_sq = a @ gramian @ a
        if length_sq <= 1e-30:
            return torch.zeros_like(a)
        return (gramian.sum(0) @ a) / length_sq * a
