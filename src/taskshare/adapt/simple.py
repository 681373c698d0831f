"""The methods that are one loss each: DAN (MMD), Deep CORAL, MCC, entropy
minimisation and pseudo-labelling (the last three read only target predictions). The first three
differ only in the function and its hyperparameters, so each is one call to `_one_loss`; entropy and
pseudo-labelling have their own forms."""
from __future__ import annotations

from dataclasses import fields, make_dataclass
from typing import Callable, ClassVar

from torch import Tensor

from .base import ADAPTERS, DomainMethod, method_dataclass
from .losses import coral, information_maximization, minimum_class_confusion, multi_kernel_mmd, pseudo_label


class _OneLoss(DomainMethod):
    """`compute(source, target)` of the features or, for methods that need classes,
    `compute(target_logits, *hyperparameters)` in field order."""

    compute: ClassVar[Callable[..., Tensor]]

    def loss(self, source, target, source_logits, target_logits, progress):
        if self.needs_classes:
            return self.compute(target_logits, *(getattr(self, f.name) for f in fields(self)))
        return self.compute(source, target)


def _one_loss(class_name: str, name: str, compute: Callable[..., Tensor], doc: str, *, on_predictions: bool = False,
              default_weight: float = 1.0, **hyperparameters: float) -> type[DomainMethod]:
    """Register a _OneLoss dataclass under `name`, its hyperparameters typed fields with defaults."""
    namespace = {"__doc__": doc, "__module__": __name__, "name": name, "compute": staticmethod(compute),
                 "needs_classes": on_predictions, "default_weight": default_weight}
    cls = make_dataclass(class_name, [(k, type(v), v) for k, v in hyperparameters.items()], bases=(_OneLoss,),
                         namespace=namespace, eq=False, repr=False)    # eq=False keeps modules hashable
    return ADAPTERS.register(name)(cls)


DAN = _one_loss("DAN", "dan", multi_kernel_mmd,
                "DAN (Long et al., ICML 2015): multi-kernel MMD between source and target features.")
CORAL = _one_loss("CORAL", "coral", coral,
                  "Deep CORAL (Sun & Saenko, 2016): match the second-order statistics of the features.")
MCC = _one_loss("MCC", "mcc", minimum_class_confusion,
                "Minimum class confusion (Jin et al., ECCV 2020) on target predictions.",
                on_predictions=True, temperature=2.5)


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
