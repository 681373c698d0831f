"""Plugging a balancing method into fit_multitask: a thin LoopHooks adapter around the drop-in
`Balancing` (which holds the method, its state and the update's math, on one process or several). What
it adds is the trainer's side: a forward that gives each head its own alias of the shared features, so
one backward yields every task's feature gradient, and the loop's hooks (objective, after step, epoch
end, checkpoint state)."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import torch
from torch import Tensor, nn

from ..balancing import Balancer
from ..data.multitask import rows_of_tasks
from ..distributed import sum_across, world
from ..errors import TaskshareError
from ..tasks import Task
from .drop_in import Balancing
from .hooks import LoopHooks
from .shares import label_weighted
from .update import shared_leaves


class BalancedStep(LoopHooks):
    """One training run's balancing: the objective, the backward that writes the update, the step
    after the optimizer's (FAMO), the epoch end (DWA), and the state run checkpoints keep; the state
    itself is the Balancing's."""

    def __init__(self, balancer: Balancer, tasks: Sequence[Task], model: nn.Module, representation: bool = False,
                 chunk: int | None = None, engine: str = "auto"):
        self.tasks, self.model = list(tasks), model
        self.features: Tensor | None = None
        self.present: Tensor | None = None    # this micro-batch's labelled tasks (None: all of them)
        self.views: dict[str, Tensor] = {}
        # a trunk with its features: the fast path; any other model: one backward per task on what the
        # tasks share (every parameter two tasks' losses reach)
        self.trunked = hasattr(model, "forward_features") and hasattr(model, "forward_heads")
        self.balancing = Balancing(balancer, len(self.tasks), representation, engine, chunk, model,
                                   across_processes=True)    # checks the method fits the level
        if representation and not self.trunked:
            raise TaskshareError(f"{balancer.name} at the representation level needs shared features: a model "
                                 f"with forward_features / forward_heads (HardSharing, MTAN), got {type(model).__name__}")
        # made once: its hooks exist only inside each forward's `with`
        self.capture = self.balancing.recorder(model.trunk) if self.trunked else None

    @property
    def balancer(self) -> Balancer:
        return self.balancing.method

    def forward(self, model: nn.Module, x: Tensor, task_names: list[str]) -> dict[str, Tensor]:
        if self.balancer.needs == "losses" or not self.trunked:
            return model(x, tasks=task_names)
        with self.capture if self.capture is not None else nullcontext():
            self.features = model.forward_features(x)
        # one alias of the features per head: one backward then yields every task's feature gradient
        self.views = {t: self.features.view_as(self.features) for t in task_names}
        return {t: model.forward_heads(self.views[t], [t])[t] for t in task_names}

    def set_share(self, share: float) -> None:
        """Several processes: this one's share of the global batch, which weights every mean across
        them (set by the trainer each step; 1.0 when alone)."""
        self.balancing.set_share(share)

    def total(self, parts: dict[str, Tensor], ys: dict[str, Tensor] | None = None) -> Tensor:
        """The method's objective over every task; a task with no known label in `ys` (the batch's
        labels; every task in `parts` when not given) is absent, which the method is told, so it adds
        exactly zero and leaves the others' weights and its own state as they were."""
        self.present = None if ys is None else self.labelled(ys)
        losses = torch.stack([parts[t.name] if t.name in parts else parts[next(iter(parts))] * 0 for t in self.tasks])
        return self.balancing.objective(losses, self.present)

    def labelled(self, ys: dict[str, Tensor]) -> Tensor | None:
        """(T,) bool: the tasks with a known label in the batch, on any process (None: all of them)."""
        counts = torch.tensor([int(t.known(t.prepare_target(torch.as_tensor(ys[t.name]))).sum()) if t.name in ys
                               else 0 for t in self.tasks], dtype=torch.float64)
        present = sum_across(counts) > 0
        return None if bool(present.all()) else present

    # --- the loop's hooks ----------------------------------------------------------------------
    def parameters(self) -> list[Tensor]:
        return list(self.balancing.parameters())

    def state(self) -> dict:
        return {"balancing": self}

    def state_dict(self) -> dict:
        """The method's parameters and buffers, and the per-epoch loss history (DWA): for run checkpoints."""
        return self.balancing.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.balancing.load_state_dict(state)

    @property
    def wants_after_step(self) -> bool:
        return self.balancing.wants_after_step

    @torch.no_grad()
    def after_step(self, model: nn.Module, x: Tensor, ys: dict[str, Tensor]) -> None:
        """Methods that learn from the effect of a step (FAMO) see the same batch's losses after it."""
        if not self.wants_after_step:
            return
        out = rows_of_tasks(model(x, tasks=list(ys)), ys)
        previous = self.balancer.losses_before_step()
        parts = {t.name: t.loss(out[t.name], ys[t.name]).float() for t in self.tasks if t.name in ys}
        if world()[1] > 1:               # the global losses: the same state on every process
            parts, share = label_weighted(parts, ys, len(x), {t.name: t for t in self.tasks})
            self.balancing.set_share(share)
        self.balancing.after_step(torch.stack([parts[t.name] if t.name in parts else previous[i]
                                               for i, t in enumerate(self.tasks)]), self.labelled(ys))

    def end_epoch(self, record: dict) -> None:
        self.balancing.end_epoch()

    def backward(self, loss: Tensor, parts: dict[str, Tensor], scale: float = 1.0) -> None:
        """Write the update into .grad. `scale`: the grad scaler's factor under fp16; the losses are
        scaled for the backward (no underflow in half precision), the method sees the UNSCALED
        Gramian or gradients, and the written update is scaled back, for the scaler to unscale."""
        if self.balancer.needs == "losses":
            super().backward(loss, parts, scale)
            return
        if scale != 1.0:
            parts = {k: v * scale for k, v in parts.items()}
        present = self.present
        if present is not None:           # absent tasks take no part: the method sees the others' rows
            parts = {t.name: parts[t.name] for t, p in zip(self.tasks, present.tolist()) if p and t.name in parts}
        losses = [parts[t.name] for t in self.tasks if t.name in parts]
        self._penalty_backward(scale)
        if not losses:
            return
        if not self.trunked:
            self.balancing.write(losses, shared_leaves(losses), scale=scale, present=present)
            return
        shared = [p for p in self.model.trunk.parameters() if p.requires_grad]
        g_z = self._feature_grads(parts, self.features)
        if shared:
            self.balancing.write(losses, shared, self.features, g_z, scale, self.capture, present)

    def _penalty_backward(self, scale: float) -> None:
        """Soft sharing's coupling is no task's loss: its gradient is added as is."""
        penalty = getattr(self.model, "penalty", None)
        if callable(penalty):
            extra = penalty()
            if extra.requires_grad:
                (extra * scale).backward()

    def _feature_grads(self, parts: dict[str, Tensor], z: Tensor) -> Tensor:
        """(T, *z.shape) d loss_t / d z from ONE backward through the heads (each head reads its own alias
        of z); the heads' own parameter gradients come from the same backward."""
        names = [t.name for t in self.tasks if t.name in parts]
        heads = [p for p in self.model.heads.parameters() if p.requires_grad]
        grads = torch.autograd.grad(sum(parts[n] for n in names), [self.views[n] for n in names] + heads,
                                    retain_graph=True, allow_unused=True)
        for p, g in zip(heads, grads[len(names):]):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        out = self.balancing.buffers.get("features", (len(names), *z.shape), z)
        for t, g in enumerate(grads[:len(names)]):
            out[t].copy_(g) if g is not None else out[t].zero_()
        return out
