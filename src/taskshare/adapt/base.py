"""The domain-adaptation contract: a method turns source and target features (and, for some, class
predictions) into one loss added to the source task loss, times `weight`. Methods with parameters
(a domain discriminator) build them once the feature width and class count are known."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from torch import Tensor, nn

from ..registry import Registry


class DomainMethod(nn.Module):
    """Subclasses are dataclasses (hyperparameters as typed fields, echoed by repr)."""

    name: ClassVar[str] = ""
    needs_classes: ClassVar[bool] = False   # reads class predictions: classification tasks only
    default_weight: ClassVar[float] = 1.0    # the trade-off against the source loss when none is given
    ramps_itself: ClassVar[bool] = False     # ramps its gradient reversal; the trainer then leaves the weight flat
    needs_labels: ClassVar[bool] = False     # loss() also takes labels= (the source labels of the batch)

    def __post_init__(self) -> None:
        nn.Module.__init__(self)

    def build(self, feature_dim: int, num_classes: int) -> None:
        """Create parameters (discriminators); called once before training."""

    def loss(self, source: Tensor, target: Tensor, source_logits: Tensor, target_logits: Tensor,
             progress: float) -> Tensor:
        raise NotImplementedError

    def class_weights(self) -> Tensor | None:
        """Weights of the source classes in the classification loss (partial adaptation); None: equal."""
        return None

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]

    __repr__ = nn.Module.__repr__


ADAPTERS: Registry[type[DomainMethod]] = Registry("domain adaptation method", DomainMethod)


def method_dataclass(cls):
    """@dataclass that keeps nn.Module's __init__ chain working (eq=False keeps modules hashable)."""
    return dataclass(eq=False, repr=False)(cls)


@method_dataclass
class Adversarial(DomainMethod):
    """A method that trains an adversary (a discriminator or a second classifier) behind a gradient
    reversal it ramps itself, by the DANN schedule with rate `gamma`; `hidden` is the adversary's width."""

    ramps_itself = True
    hidden: int = 256
    gamma: float = 10.0


def discriminator(width: int, hidden: int) -> nn.Sequential:
    """The usual domain classifier: two hidden ReLU layers, one logit (source = 1)."""
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
