"""The methods that are one parameter-free loss each: DAN (MMD), Deep CORAL, MCC, entropy
minimisation and pseudo-labelling (the last three read only target predictions)."""
from __future__ import annotations

from .base import ADAPTERS, DomainMethod, method_dataclass
from .losses import coral, information_maximization, minimum_class_confusion, multi_kernel_mmd, pseudo_label


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
    """Entropy minimisation on target predictions, in its information-maximisation form (the one SHOT
    and IM-based adaptation use): the mean entropy minus `diversity` times the entropy of the mean
    prediction. Plain entropy minimisation (`diversity=0`, Grandvalet & Bengio 2004) sharpens whatever
    the source model predicts, its errors included, and lets the predictions pile onto the classes it
    already over-predicts on the target (-3.1 points on noisy, blurred digits without BatchNorm); the
    diversity term keeps the mean prediction spread over the classes."""

    name = "entropy"
    needs_classes = True
    default_weight = 0.1   # at 1 the predictions collapse onto one class before the source loss can object
    diversity: float = 1.0

    def loss(self, source, target, source_logits, target_logits, progress):
        return information_maximization(target_logits, self.diversity)


@ADAPTERS.register("pseudo_label")
@method_dataclass
class PseudoLabel(DomainMethod):
    """Pseudo-labelling: cross-entropy on confident target predictions (a self-training baseline).
    Confident: probability >= `threshold`; with `max_portion` > 0, also the most confident share of
    the batch's samples predicted as each class (class-balanced self-training, Zou et al., ECCV 2018),
    the share growing linearly from `portion` to `max_portion` over training as CBST's does round by
    round. Off by default: on trunks without BatchNorm no target prediction reached 0.95, so the term
    never changed training, but CBST's share (0.2 -> 0.5) then cost 7.7 points on noisy, blurred
    digits and 2.6 on rot30 (3 seeds), and shares from 0 (-> 0.5, -> 0.2) cost as much on the seeds
    tried: self-training on the current model's hard labels teaches a 63%-accurate model its errors."""

    name = "pseudo_label"
    needs_classes = True
    threshold: float = 0.95
    portion: float = 0.0       # CBST starts at 0.2
    max_portion: float = 0.0   # and caps at 0.5

    def loss(self, source, target, source_logits, target_logits, progress):
        share = self.portion + (self.max_portion - self.portion) * progress
        return pseudo_label(target_logits, self.threshold, share if share > 0 else None)
