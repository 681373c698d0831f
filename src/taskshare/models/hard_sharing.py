"""Hard parameter sharing: one trunk shared by every task, one small head per task."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..tasks import Task
from .heads import check_tasks, make_heads, requested


class HardSharing(nn.Module):
    """`{task: head_task(trunk(x))}`. The trunk is any module giving (batch, features), a pretrained
    one included; each head's width comes from its task (`Task.make_head`)."""

    def __init__(self, trunk: nn.Module, tasks: Sequence[Task], example: Tensor | None = None,
                 in_features: int | None = None):
        super().__init__()
        self.tasks = {t.name: t for t in check_tasks(tasks)}
        self.trunk = trunk
        self.heads = make_heads(list(self.tasks.values()), trunk, example, in_features)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward_heads(self, z: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        return {t: self.heads[t](z) for t in requested(self.heads, tasks)}

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        return self.forward_heads(self.trunk(x), tasks)
