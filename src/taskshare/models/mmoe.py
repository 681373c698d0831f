"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): several expert networks see the input; each
task mixes their outputs with its own softmax gate, so tasks that disagree can lean on different
experts while related tasks share them."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from .heads import TaskModules, check_tasks, requested
from .sharing import SHARING, dry_shapes, fresh_copies, gate_input, task_heads


class MMoE(nn.Module):
    """`experts`: a factory (called once per expert) or a module (copied, re-initialised). Task t's
    features are sum_e softmax(W_t x)_e expert_e(x), then its head. The gates read the input (its
    channels averaged over positions for images)."""

    def __init__(self, experts: nn.Module | Callable[[], nn.Module], tasks: Sequence[Task], example: Tensor,
                 num_experts: int = 4):
        super().__init__()
        if num_experts < 1:
            raise TaskshareError(f"mmoe: num_experts must be >= 1, got {num_experts!r}")
        self.tasks = {t.name: t for t in check_tasks(tasks)}
        self.experts = nn.ModuleList(fresh_copies(experts, num_experts))
        width = dry_shapes([self.experts[0]], example)[0][1]
        self.gates = TaskModules({t: nn.Linear(gate_input(example).shape[1], num_experts) for t in self.tasks})
        self.heads = task_heads(list(self.tasks.values()), width)

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        g = gate_input(x).flatten(1)
        return {t: torch.softmax(gate(g), -1) for t, gate in self.gates.items()}

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        names = requested(self.heads, tasks)
        outs = torch.stack([e(x) for e in self.experts], 1)       # (batch, experts, *features)
        g = gate_input(x).flatten(1)
        result = {}
        for t in names:
            w = torch.softmax(self.gates[t](g), -1).to(outs.dtype)
            mixed = torch.einsum("be,be...->b...", w, outs)
            result[t] = self.heads[t](mixed)
        return result


@SHARING.register("mmoe")
def _build(trunk_factory, tasks, example, num_experts: int = 4):
    return MMoE(trunk_factory, tasks, example, num_experts)
