"""The methods that are one parameter-free loss each: DAN (MMD), Deep CORAL, MCC, entropy
minimisation and pseudo-labelling (the last three read only target predictions). They differ only in
the function and its hyperparameters, so each is one call to `_one_loss`."""
from __future__ import annotations

from dataclasses import fields, make_dataclass
from typing import Callable, ClassVar

from torch import Tensor

from .base import ADAPTERS, DomainMethod
from .losses import coral, entropy, minimum_class_confusion, multi_kernel_mmd, pseudo_label


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
# weight 0.1: at 1 the predictions collapse onto one class before the source loss can object
Entropy = _one_loss("Entropy", "entropy", entropy,
                    "Entropy minimisation on target predictions: a self-training baseline.",
                    on_predictions=True, default_weight=0.1)
PseudoLabel = _one_loss("PseudoLabel", "pseudo_label", pseudo_label,
                        "Pseudo-labelling: cross-entropy on confident target predictions (a self-training baseline).",
                        on_predictions=True, threshold=0.95)
