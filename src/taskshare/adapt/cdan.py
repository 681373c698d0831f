from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import ADAPTERS, Adversarial, discriminator, method_dataclass
from .dann import domain_loss
from .grl import dann_schedule, reverse_gradient


@ADAPTERS.register("cdan")
@method_dataclass
class CDAN(Adversarial):
    """CDAN (Long et al., NeurIPS 2018): the discriminator sees the multilinear map of features and
    predicted class probabilities, f (x) g, so it aligns the joint distribution of features and classes;
    when d x classes exceeds `max_dim`, a fixed random projection (the paper's randomized map) keeps it
    small. `entropy_weighting` (CDAN+E) weights each sample by 1 + exp(-entropy of its prediction)."""

    name = "cdan"
    needs_classes = True
    max_dim: int = 4096
    random_dim: int = 1024
    entropy_weighting: bool = True

    def build(self, feature_dim: int, num_classes: int) -> None:
        self.randomized = feature_dim * num_classes > self.max_dim
        width = self.random_dim if self.randomized else feature_dim * num_classes
        if self.randomized:
            g = torch.Generator().manual_seed(0)
            self.register_buffer("proj_f", torch.randn(feature_dim, self.random_dim, generator=g))
            self.register_buffer("proj_g", torch.randn(num_classes, self.random_dim, generator=g))
        self.discriminator = discriminator(width, self.hidden)

    def _map(self, f: Tensor, g: Tensor) -> Tensor:
        if self.randomized:
            return (f @ self.proj_f) * (g @ self.proj_g) / math.sqrt(self.random_dim)
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)

    def loss(self, source, target, source_logits, target_logits, progress):
        f = torch.cat([source, target]).float()
        g = torch.softmax(torch.cat([source_logits, target_logits]).float(), 1).detach()
        h = reverse_gradient(self._map(f, g), dann_schedule(progress, self.gamma))
        d = self.discriminator(h).squeeze(1)
        n = len(source)
        if not self.entropy_weighting:
            return domain_loss(d[:n], d[n:])
        w = 1 + torch.exp(-(-(g * torch.log(g.clamp_min(1e-12))).sum(1)))
        ws, wt = w[:n] / w[:n].sum(), w[n:] / w[n:].sum()
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return 0.5 * ((ws * bce(d[:n], torch.ones_like(d[:n]), reduction="none")).sum()
                      + (wt * bce(d[n:], torch.zeros_like(d[n:]), reduction="none")).sum())
