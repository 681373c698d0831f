"""TrunkHead: a trunk (any nn.Module giving (batch, features)) followed by a task head."""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from .surgery import LayerGroup, feature_dim, layer_groups, split_head


class TrunkHead(nn.Module):
    """`head(trunk(x))`. A trunk with no trainable parameter runs in eval mode (dropout off, BatchNorm
    statistics fixed), which is what makes caching its outputs exact.

    group_patterns: optional regexes over the trunk's parameter names defining its layer groups.
    train_frozen_bn: let BatchNorm statistics in frozen parts keep updating (then no feature cache).
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, group_patterns: Sequence[str] | Mapping[str, str] | None = None):
        super().__init__()
        self.trunk, self.head = trunk, head
        self.group_patterns = (dict(group_patterns) if isinstance(group_patterns, Mapping) else list(group_patterns)
                               ) if group_patterns is not None else None
        self.lora_targets: list[str] = []
        self.train_frozen_bn = False

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))

    def groups(self) -> list[LayerGroup]:
        """The trunk's layer groups from input to output, then the head as the last group."""
        trunk_groups = layer_groups(self.trunk, self.group_patterns)
        for g in trunk_groups:
            g.params = [(f"trunk.{n}", p) for n, p in g.params]
        head = LayerGroup("head", [(f"head.{n}", p) for n, p in self.head.named_parameters()], [self.head])
        return trunk_groups + [head]

    def trunk_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.trunk.parameters())

    def train(self, mode: bool = True) -> "TrunkHead":
        super().train(mode)
        if mode and self.trunk_frozen() and not self.train_frozen_bn:
            self.trunk.eval()
        return self


def new_head(trunk: nn.Module, task: Task, example: Tensor | None = None, in_features: int | None = None,
             group_patterns: Sequence[str] | Mapping[str, str] | None = None) -> TrunkHead:
    """Attach `task`'s head to a trunk; the input width comes from a dry forward pass on `example`."""
    if in_features is None:
        if example is None:
            raise TaskshareError("new_head needs an example input batch (or in_features) to size the head")
        in_features = feature_dim(trunk, example)
    return TrunkHead(trunk, task.make_head(in_features), group_patterns)


def transfer_model(model: nn.Module, task: Task, example: Tensor | None = None, head: str | None = None,
                   group_patterns: Sequence[str] | Mapping[str, str] | None = None) -> TrunkHead:
    """Cut the old output layer of a trained model and attach a new head for `task`.

    The old head is found automatically (the last nn.Linear to run) unless named (`head='fc'`); the new
    head's input width is the old head's, or the trunk's measured output width.
    """
    if isinstance(model, TrunkHead):
        trunk, old = copy.deepcopy(model.trunk), model.head
    else:
        trunk, old = split_head(model, head, example)
    width = old.in_features if isinstance(old, nn.Linear) else None
    if example is not None:
        measured = feature_dim(trunk, example)
        if width is not None and measured != width:
            raise TaskshareError(f"trunk outputs {measured} features but the old head took {width}")
        width = measured
    return new_head(trunk, task, in_features=width, group_patterns=group_patterns)
