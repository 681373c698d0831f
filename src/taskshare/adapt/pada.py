from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ADAPTERS, DomainMethod, discriminator, method_dataclass
from .grl import dann_schedule, reverse_gradient


@ADAPTERS.register("pada")
@method_dataclass
class PADA(DomainMethod):
    """Partial adaptation (PADA, Cao et al., ECCV 2018) for a target holding a subset of the source
    classes: DANN where each source sample counts in the domain loss and in the classification loss
    by the weight of its class. The paper recomputes the weights over the whole target set every few
    epochs; here they are a running mean over batches (`momentum`), kept with the run checkpoint.

    By default the weights act in the domain loss only, as importance-weighted adversarial alignment
    does (IWAN, Zhang et al., CVPR 2018): source classes the target lacks are not aligned with it.
    `classifier_weights=True` also weighs the classification loss, the paper's form. On a target that
    holds every class, that fed the source model's prediction bias back into its classifier (classes
    under-predicted on the target weighed less, were learned less, and were predicted still less):
    -2.2 points on noisy, blurred digits without BatchNorm (+0.6 weighing the domain loss only)."""

    name = "pada"
    needs_classes = True
    needs_labels = True
    ramps_itself = True
    hidden: int = 256
    gamma: float = 10.0
    momentum: float = 0.99
    classifier_weights: bool = False

    def build(self, feature_dim: int, num_classes: int) -> None:
        self.discriminator = discriminator(feature_dim, self.hidden)
        self.register_buffer("mean_prediction", torch.full((num_classes,), 1.0 / num_classes))

    def target_class_weights(self) -> Tensor:
        """The estimate: each class's mean target prediction, divided by the largest."""
        return self.mean_prediction / self.mean_prediction.max().clamp_min(1e-12)

    def class_weights(self) -> Tensor | None:
        return self.target_class_weights() if self.classifier_weights else None

    def loss(self, source, target, source_logits, target_logits, progress, labels=None):
        with torch.no_grad():
            batch = torch.softmax(target_logits.detach().float(), 1).mean(0)
            self.mean_prediction.mul_(self.momentum).add_((1 - self.momentum) * batch)
        known = labels.long() >= 0          # an unknown label (-1) weighs 0 in the domain loss
        w = self.target_class_weights()[labels.long().clamp_min(0)] * known
        z = reverse_gradient(torch.cat([source, target]), dann_schedule(progress, self.gamma))
        d = self.discriminator(z.float()).squeeze(1)
        n = len(source)
        s = (w * F.binary_cross_entropy_with_logits(d[:n], torch.ones_like(d[:n]), reduction="none")).sum() / w.sum().clamp_min(1e-12)
        t = F.binary_cross_entropy_with_logits(d[n:], torch.zeros_like(d[n:]))
        return 0.5 * (s + t)
