"""The strategy contract. A strategy is data: a list of stages, each saying how many of the last
layer groups train, the learning-rate scale of every group, its share of the epoch budget, and an
optional penalty. The runner does the training; strategies never touch the loop.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Callable, ClassVar

from torch import Tensor

from ..errors import TaskshareError
from ..models import TrunkHead
from ..registry import Registry


@dataclass
class DataFacts:
    """What a strategy may look at before training: sizes, not labels' content."""

    train_size: int
    num_classes: int | None = None
    labels_per_class: int | None = None   # the smallest class's count in the training split
    val_labels_per_class: int | None = None  # the same for the validation split
    source_size: int | None = None        # examples the trunk was pretrained on, when known
    augmented: bool = False


@dataclass
class Stage:
    name: str
    train_last: int | None = None          # groups trained, counted from the head; None = all
    lr_scales: list[float] | None = None   # one per group, input to output; None = all 1
    epochs_fraction: float = 1.0
    penalty: Callable[[TrunkHead], Callable[[], Tensor]] | None = None  # built on the stage's start
    trunk_weight_decay: float | None = None  # override config.weight_decay for the trunk's groups
    head_weight_decay: float | None = None   # ... and for the head's (where a penalty already regularises it)
    prepare: Callable[[TrunkHead], None] | None = None  # changes the model first (e.g. adds LoRA adapters)
    only: str | None = None                # regex: of the trunk's parameters, only matching ones train
    solver: str = "sgd"                    # "convex": a head-only stage solved exactly where it can be (else SGD)
    temper_head: bool | None = False       # start with the head shrunk to a fresh head's scale, predictions
                                           # unchanged (classification); None: where the trunk has BatchNorm
                                           # (transfer/head_temper.py says why)


class Strategy:
    """Base class: subclasses are dataclasses whose fields are the hyperparameters (repr echoes them)."""

    name: ClassVar[str] = ""
    reinit: ClassVar[bool] = False  # True: start from random weights (the scratch baseline)

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        raise NotImplementedError

    def resolve(self, facts: DataFacts) -> tuple["Strategy", str]:
        """The strategy that actually runs, and why (only `auto` differs from itself)."""
        return self, ""

    def label(self) -> str:
        """Short name with non-default hyperparameters, for tables: finetune(trunk_lr_scale=1.0)."""
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)  # type: ignore[arg-type]
                   if getattr(self, f.name) != field_default(f)]
        return f"{self.name}({', '.join(changed)})" if changed else self.name


def field_default(f):
    """A dataclass field's default value, calling its factory if it has one (labels show what changed)."""
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", Strategy)


def check_fraction(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise TaskshareError(f"{name} must be in (0, 1), got {value!r}")
