"""Customized Gate Control and Progressive Layered Extraction (Tang et al., RecSys 2020): shared
experts plus experts owned by each task; each task's gate mixes its own and the shared experts, so a
task can keep what conflicts with the others out of the shared part. CGC is one such level; PLE stacks
them, a shared gate at every level but the last mixing all experts into the next level's shared input."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from .heads import TaskModules, check_tasks, requested
from .sharing import SHARING, dry_shapes, fresh_copies, gate_input, task_heads


def _mix(gate: nn.Module, h: Tensor, outs: list[Tensor]) -> Tensor:
    stacked = torch.stack(outs, 1)                          # (batch, experts, *features)
    w = torch.softmax(gate(gate_input(h).flatten(1)), -1).to(stacked.dtype)
    return torch.einsum("be,be...->b...", w, stacked)


class PLE(nn.Module):
    """`trunk`: an nn.Sequential (one level per child, the level's experts being fresh copies of that
    child) or a factory returning one (called once per expert, so each starts from its own random
    initialisation). `shared_experts` / `task_experts`: experts per level. levels=1 with the whole
    trunk as one stage is CGC."""

    def __init__(self, trunk: nn.Sequential | Callable[[], nn.Sequential], tasks: Sequence[Task], example: Tensor,
                 shared_experts: int = 2, task_experts: int = 1):
        super().__init__()
        if shared_experts < 1 or task_experts < 0:
            raise TaskshareError(f"ple: expected shared_experts >= 1 and task_experts >= 0, got "
                                 f"{shared_experts!r} and {task_experts!r}")
        self.tasks = {t.name: t for t in check_tasks(tasks)}
        factory = trunk if callable(trunk) and not isinstance(trunk, nn.Module) else None
        template = factory() if factory else trunk
        if not isinstance(template, nn.Sequential):
            raise TaskshareError(f"ple needs an nn.Sequential trunk (its children are the levels), got "
                                 f"{type(template).__name__}")
        n = len(template)

        def experts(level: int, count: int) -> nn.ModuleList:
            source = (lambda: factory()[level]) if factory else template[level]
            return nn.ModuleList(fresh_copies(source, count))

        self.shared = nn.ModuleList([experts(i, shared_experts) for i in range(n)])
        self.own = nn.ModuleList([TaskModules({t: experts(i, task_experts) for t in self.tasks}) for i in range(n)])
        shapes = [example.shape] + dry_shapes(list(template), example)
        widths = [gate_input(torch.zeros(2, *s[1:])).shape[1] for s in shapes]
        k = shared_experts + task_experts
        self.task_gates = nn.ModuleList([TaskModules({t: nn.Linear(widths[i], k) for t in self.tasks})
                                         for i in range(n)])
        # the last level's shared gate would feed nothing
        self.shared_gates = nn.ModuleList([nn.Linear(widths[i], shared_experts + task_experts * len(self.tasks))
                                           for i in range(n - 1)])
        self.heads = task_heads(list(self.tasks.values()), shapes[-1][1])

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        names = requested(self.heads, tasks)
        shared, own = x, {t: x for t in self.tasks}
        for i in range(len(self.shared)):
            shared_outs = [e(shared) for e in self.shared[i]]
            own_outs = {t: [e(own[t]) for e in self.own[i][t]] for t in self.tasks}
            last = i == len(self.shared) - 1
            live = names if last else list(self.tasks)       # every task feeds the next shared input
            next_own = {t: _mix(self.task_gates[i][t], own[t], own_outs[t] + shared_outs) for t in live}
            if not last:
                everything = [o for t in self.tasks for o in own_outs[t]] + shared_outs
                shared = _mix(self.shared_gates[i], shared, everything)
            own = next_own
        return {t: self.heads[t](own[t]) for t in names}


@SHARING.register("ple")
def _ple(trunk_factory, tasks, example, shared_experts: int = 2, task_experts: int = 1):
    return PLE(trunk_factory, tasks, example, shared_experts, task_experts)


@SHARING.register("cgc")
def _cgc(trunk_factory, tasks, example, shared_experts: int = 2, task_experts: int = 1):
    return PLE(lambda: nn.Sequential(trunk_factory()), tasks, example, shared_experts, task_experts)
