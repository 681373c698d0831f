from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ADAPTERS, DomainMethod, method_dataclass
from .grl import dann_schedule, reverse_gradient


def classifier_discrepancy(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """MCD's discrepancy: the mean absolute difference of two classifiers' class probabilities."""
    return (torch.softmax(logits_a.float(), 1) - torch.softmax(logits_b.float(), 1)).abs().mean()


@ADAPTERS.register("mcd")
@method_dataclass
class MCD(DomainMethod):
    """Maximum classifier discrepancy (Saito et al., CVPR 2018): two extra classifiers learn the source
    and disagree as much as they can on the target; the trunk makes them agree. The paper alternates
    three steps per batch; here one step does all three, the disagreement passing to the trunk through
    a gradient reversal (ramped like DANN's), so the two classifiers maximise it and the trunk
    minimises it. The model's own head stays the predictor."""

    name = "mcd"
    needs_classes = True
    needs_labels = True
    ramps_itself = True
    hidden: int = 256
    gamma: float = 10.0

    def build(self, feature_dim: int, num_classes: int) -> None:
        def head():
            return nn.Sequential(nn.Linear(feature_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, num_classes))
        self.first, self.second = head(), head()

    def loss(self, source, target, source_logits, target_logits, progress, labels=None):
        y = labels.long()          # unknown labels (-1) add nothing, as in the task loss
        fit = F.cross_entropy(self.first(source.float()), y, ignore_index=-1) + \
            F.cross_entropy(self.second(source.float()), y, ignore_index=-1)
        z = reverse_gradient(target.float(), dann_schedule(progress, self.gamma))
        return fit - classifier_discrepancy(self.first(z), self.second(z))
