from __future__ import annotations

import torch
from torch import Tensor

from .base import ADAPTERS, DomainMethod, method_dataclass
from .losses import check_feature_pair, gaussian_kernels


def joint_mmd(source: list[Tensor], target: list[Tensor]) -> Tensor:
    """JMMD (Long et al., ICML 2017): the squared MMD of the product of one kernel per layer (here the
    features' multi-kernel set and the predictions' single kernel), the biased estimator."""
    k = None
    for i, (s, t) in enumerate(zip(source, target)):
        check_feature_pair(s, t, "joint mmd")
        layer = gaussian_kernels(torch.cat([s, t]).float(), (0.25, 0.5, 1.0, 2.0, 4.0) if i == 0 else (1.0,))
        k = layer if k is None else k * layer
    n = len(source[0])
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


@ADAPTERS.register("jan")
@method_dataclass
class JAN(DomainMethod):
    """JAN (Long et al., ICML 2017): align the joint distribution of features and class predictions by
    the MMD of the product of their kernels; DAN's kernel (scale-invariant bandwidths) on the features,
    one Gaussian kernel on the softmax outputs."""

    name = "jan"
    needs_classes = True

    def loss(self, source, target, source_logits, target_logits, progress):
        return joint_mmd([source, torch.softmax(source_logits.float(), 1)],
                         [target, torch.softmax(target_logits.float(), 1)])
