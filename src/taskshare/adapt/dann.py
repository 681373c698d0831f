from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ADAPTERS, DomainMethod, discriminator, method_dataclass
from .grl import dann_schedule, reverse_gradient


def domain_loss(logits_source: Tensor, logits_target: Tensor) -> Tensor:
    """Binary cross-entropy of a domain classifier (source = 1, target = 0), domains weighted equally."""
    return 0.5 * (F.binary_cross_entropy_with_logits(logits_source.float(), torch.ones_like(logits_source.float()))
                  + F.binary_cross_entropy_with_logits(logits_target.float(), torch.zeros_like(logits_target.float())))


@ADAPTERS.register("dann")
@method_dataclass
class DANN(DomainMethod):
    """DANN (Ganin et al., JMLR 2016): a domain discriminator on the features behind a gradient
    reversal layer, whose strength follows 2 / (1 + exp(-gamma p)) - 1 over training progress p; the
    trunk learns features the discriminator cannot tell apart."""

    name = "dann"
    ramps_itself = True
    hidden: int = 256
    gamma: float = 10.0

    def build(self, feature_dim: int, num_classes: int) -> None:
        self.discriminator = discriminator(feature_dim, self.hidden)

    def loss(self, source, target, source_logits, target_logits, progress):
        coeff = dann_schedule(progress, self.gamma)
        z = reverse_gradient(torch.cat([source, target]), coeff)
        d = self.discriminator(z.float()).squeeze(1)
        return domain_loss(d[:len(source)], d[len(source):])
