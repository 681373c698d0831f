"""Task heads for multi-task models, and the checks every multi-task model makes on its tasks."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from ..tasks_dense import DENSE_KINDS
from .surgery import feature_dim, module_device


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


class PooledHead(nn.Module):
    """A per-image task's head on dense (batch, channels, H, W) features: the channels averaged over
    positions, then the task's own head (dense and per-image tasks can then share one trunk)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, z: Tensor) -> Tensor:
        return self.head(z.flatten(2).mean(-1) if z.dim() > 2 else z)


def task_head(task: Task, width: int, dense_features: bool) -> nn.Module:
    head = task.make_head(width)
    return PooledHead(head) if dense_features and task.kind not in DENSE_KINDS else head


@torch.no_grad()
def _output_shape(trunk: nn.Module, example: Tensor) -> tuple[int, ...] | None:
    was = trunk.training
    try:
        trunk.eval()
        out = trunk(example.to(module_device(trunk)))
        return tuple(out.shape) if isinstance(out, Tensor) else None
    except Exception:
        return None                     # feature_dim below names the problem
    finally:
        trunk.train(was)


def make_heads(tasks: Sequence[Task], trunk: nn.Module, example: Tensor | None, in_features: int | None) -> nn.ModuleDict:
    dense = any(t.kind in DENSE_KINDS for t in tasks)
    if in_features is None:
        if example is None:
            raise TaskshareError("give an example input batch (or in_features) to size the task heads")
        shape = _output_shape(trunk, example)
        if shape is not None and len(shape) == 4:     # image features: dense heads, pooled per-image heads
            in_features, dense = shape[1], True
        elif dense:
            raise TaskshareError(f"dense tasks need a trunk giving (batch, channels, H, W) features, got shape "
                                 f"{shape}; drop the trunk's final pooling / flatten")
        else:             # (batch, features), or feature_dim's message naming what is wrong
            in_features = shape[1] if shape is not None and len(shape) == 2 else feature_dim(trunk, example)
    return TaskModules({t.name: task_head(t, in_features, dense) for t in tasks})


# what every nn.Module instance holds (training, _parameters, ...): names a ModuleDict key cannot take
_MODULE_ATTRIBUTES = frozenset(vars(nn.Module()))
RESERVED = "task:"


def _taken(name: str) -> bool:
    return hasattr(nn.ModuleDict, name) or name in _MODULE_ATTRIBUTES


def task_key(name: str) -> str:
    """The submodule name a task is stored under, the same on saving and loading: its own name, or
    RESERVED + name for a name nn.ModuleDict refuses (`half`, `to`, `train`)."""
    return RESERVED + name if _taken(name) else name


def task_of(key: str) -> str:
    """The task a submodule name stores (task_key's inverse)."""
    rest = key[len(RESERVED):]
    return rest if key.startswith(RESERVED) and _taken(rest) else key


class TaskModules(nn.ModuleDict):
    """A ModuleDict keyed by task name that takes any name: a label column called `half`, `to` or
    `train` is an attribute of every nn.Module, which nn.ModuleDict refuses as a key (KeyError). Such a
    name alone is stored under task_key's reserved key; every other name keeps its own, so the
    state_dict keys of models saved before stay as they were and their checkpoints keep loading. (No
    attribute is added here: each would be one more name refused.)"""

    def __getitem__(self, name: str) -> nn.Module:
        return self._modules[task_key(name)]

    def __setitem__(self, name: str, module: nn.Module) -> None:
        if task_of(name) != name:
            raise TaskshareError(f"task name {name!r} is reserved (it stores the task {task_of(name)!r}); "
                                 f"expected another name")
        self.add_module(task_key(name), module)

    def __delitem__(self, name: str) -> None:
        del self._modules[task_key(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and task_key(name) in self._modules

    def __iter__(self):
        return iter([task_of(k) for k in self._modules])

    def keys(self):
        return list(self)

    def items(self):
        return [(task_of(k), m) for k, m in self._modules.items()]

    def pop(self, name: str) -> nn.Module:
        module = self[name]
        del self[name]
        return module


def requested(heads: nn.ModuleDict, tasks: Sequence[str] | None) -> list[str]:
    if tasks is None:
        return list(heads.keys())
    unknown = [t for t in tasks if t not in heads]
    if unknown:
        raise TaskshareError(f"unknown task {unknown[0]!r}; this model has {list(heads.keys())}")
    return list(tasks)
