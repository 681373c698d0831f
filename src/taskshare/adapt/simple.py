"""The methods that are one parameter-free loss each: DAN (MMD), Deep CORAL, MCC, entropy
minimisation and pseudo-labelling (the last three read only target predictions)."""
from __future__ import annotations

from .base import ADAPTERS, DomainMethod, method_dataclass
from .losses import coral, entropy, minimum_class_confusion, multi_kernel_mmd, pseudo_label


@ADAPTERS.register("dan")
@method_dataclass
class DAN(DomainMethod):
    """DAN (Long et al., ICML 2015): multi-kernel MMD between source and target features."""

    name = "dan"

    def loss(self, source, target, source_logits, target_logits, progress):
        return multi_kernel_mmd(source, target)


@ADAPTERS.register("coral")
@method_dataclass
class CORAL(DomainMethod):
    """Deep CORAL (Sun & Saenko, 2016): match the second-order statistics of the features."""

    name = "coral"

    def loss(self, source, target, source_logits, target_logits, progress):
        return coral(source, target)


@ADAPTERS.register("mcc")
@method_dataclass
class MCC(DomainMethod):
    """Minimum class confusion (Jin et al., ECCV 2020) on target predictions."""

    name = "mcc"
    needs_classes = True
    temperature: float = 2.5

    def loss(self, source, target, source_logits, target_logits, progress):
        return minimum_class_confusion(target_logits, self.temperature)


@ADAPTERS.register("entropy")
@method_dataclass
class Entropy(DomainMethod):
    """Entropy minimisation on target predictions: a self-training baseline."""

    name = "entropy"
    needs_classes = True
    default_weight = 0.1   # at 1 the predictions collapse onto one class before the source loss can object

    def loss(self, source, target, source_logits, target_logits, progress):
        return entropy(target_logits)


@ADAPTERS.register("pseudo_label")
@method_dataclass
class PseudoLabel(DomainMethod):
    """Pseudo-labelling: cross-entropy on confident target predictions (a self-training baseline)."""

    name = "pseudo_label"
    needs_classes = True
    threshold: float = 0.95

    def loss(self, source, target, source_logits, target_logits, progress):
        return pseudo_label(target_logits, self.threshold)
