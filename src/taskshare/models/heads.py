"""Task heads for multi-task models, and the checks every multi-task model makes on its tasks."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from .surgery import feature_dim


def check_tasks(tasks: Sequence[Task]) -> list[Task]:
    tasks = list(tasks)
    if not tasks:
        raise TaskshareError("a multi-task model needs at least one task")
    seen: set[str] = set()
    for t in tasks:
        if not isinstance(t, Task):
            raise TaskshareError(f"expected Task objects, got {type(t).__name__}")
        if "." in t.name:
            raise TaskshareError(f"task name {t.name!r} contains '.'; expected a name without dots")
        if t.name in seen:
            raise TaskshareError(f"task name {t.name!r} is used twice; task names must be unique")
        seen.add(t.name)
    return tasks


def make_heads(tasks: Sequence[Task], trunk: nn.Module, example: Tensor | None, in_features: int | None) -> nn.ModuleDict:
    if in_features is None:
        if example is None:
            raise TaskshareError("give an example input batch (or in_features) to size the task heads")
        in_features = feature_dim(trunk, example)
    return nn.ModuleDict({t.name: t.make_head(in_features) for t in tasks})


def requested(heads: nn.ModuleDict, tasks: Sequence[str] | None) -> list[str]:
    if tasks is None:
        return list(heads.keys())
    unknown = [t for t in tasks if t not in heads]
    if unknown:
        raise TaskshareError(f"unknown task {unknown[0]!r}; this model has {list(heads.keys())}")
    return list(tasks)
