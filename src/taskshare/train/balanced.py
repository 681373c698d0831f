"""Plugging a balancing method into multi-task training: what to differentiate (loss weighting), or
how to write the shared gradients (gradient balancing, full or representation level)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..balancing.build import build_balancer  # noqa: F401  (its home was here)
from ..balancing.drop_in import shared_leaves, write_balanced
from ..balancing.conv_kernel import LayerCapture
from ..balancing import (Balancer, Buffers, gramian_of, per_task_grads,
                         write_grads, write_weighted)
from ..distributed import mean_across, sum_across, world
from ..errors import TaskshareError
from ..tasks import Task
from .shares import label_weighted


class BalancedStep:
    """State shared by the objective and the backward of one training run."""

    def __init__(self, balancer: Balancer, tasks: Sequence[Task], model: nn.Module, representation: bool = False,
                 chunk: int | None = None, engine: str = "auto"):
        self.balancer, self.tasks, self.model = balancer, list(tasks), model
        self.representation, self.chunk, self.engine = representation, chunk, engine
        self.step, self.history, self._epoch = 0, [], []
        self.features: Tensor | None = None
        self.share = 1.0
        self.views: dict[str, Tensor] = {}
        self.buffers = Buffers()
        if engine not in ("auto", "kernel", "batched", "sequential"):
            raise TaskshareError(f"engine must be 'auto', 'kernel', 'batched' or 'sequential', got {engine!r}")
        # a trunk with its features: the fast path; any other model: one backward per task on what the
        # tasks share (its shared_parameters(), or every parameter two tasks' losses reach)
        self.trunked = hasattr(model, "forward_features") and hasattr(model, "forward_heads")
        if balancer.needs != "losses":
            if representation and not self.trunked:
                raise TaskshareError(f"{balancer.name} at the representation level needs shared features: a model "
                                     f"with forward_features / forward_heads (HardSharing, MTAN), got "
                                     f"{type(model).__name__}")
            if representation and not balancer.representation_ok:
                raise TaskshareError(f"{balancer.name} cannot run at the representation level: its update would "
                                     f"leave the trunk without gradient")
        elif representation:
            raise TaskshareError(f"{balancer.name} weights losses; the representation level applies to gradient methods")
        if hasattr(balancer, "attach"):
            balancer.attach(model)
        self.capture = None
        if self.trunked and balancer.needs == "gramian" and not representation and engine in ("auto", "kernel"):
            self.capture = LayerCapture(model.trunk, [p for p in model.trunk.parameters() if p.requires_grad],
                                        convs=engine == "kernel")

    def forward(self, model: nn.Module, x: Tensor, task_names: list[str]) -> dict[str, Tensor]:
        if self.balancer.needs == "losses" or not self.trunked:
            return model(x, tasks=task_names)
        if self.capture is not None:
            with self.capture:
                self.features = model.forward_features(x)
        else:
            self.features = model.forward_features(x)
        # one alias of the features per head: one backward then yields every task's feature gradient
        self.views = {t: self.features.view_as(self.features) for t in task_names}
        return {t: model.forward_heads(self.views[t], [t])[t] for t in task_names}

    def set_share(self, share: float) -> None:
        """Several processes: this one's share of the global batch, which weights every mean across
        them (set by the trainer each step; 1.0 when alone)."""
        self.share = share
        if getattr(self.balancer, "reduces_itself", False):
            self.balancer.share = share

    def total(self, parts: dict[str, Tensor]) -> Tensor:
        losses = torch.stack([parts[t.name] if t.name in parts else parts[next(iter(parts))] * 0 for t in self.tasks])
        self._epoch.append(mean_across(losses.detach(), self.share))   # the same history on every process
        self.step += 1
        if self.balancer.needs == "losses":
            if world()[1] > 1 and not getattr(self.balancer, "reduces_itself", False):
                return self._global_objective(losses)
            return self.balancer.task_loss(losses, self.step, self.history)
        return losses.sum()

    def _global_objective(self, losses: Tensor) -> Tensor:
        """Several processes: the method sees the GLOBAL task losses (the mean of the processes' means),
        so its state (FAMO's logits, a loss history) moves the same way everywhere. Its objective f is
        then linearised there: each local loss is weighted by df/dL_t at the global losses, and the
        averaged gradients are exactly those of f on the whole batch, for any f (GLS, log scaling, FAMO
        included). The method's own parameters get the gradient of f itself, the same on every process."""
        point = mean_across(losses.detach(), self.share).requires_grad_(True)
        objective = self.balancer.task_loss(point, self.step, self.history)
        (slope,) = torch.autograd.grad(objective, point, retain_graph=True, allow_unused=True)
        slope = torch.zeros_like(point) if slope is None else slope.detach()
        return objective + (slope * (losses - losses.detach())).sum()

    def state_dict(self) -> dict:
        """The method's parameters and buffers, and the per-epoch loss history (DWA): for run checkpoints."""
        return {"balancer": self.balancer.state_dict(), "history": list(self.history), "epoch": list(self._epoch),
                "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.balancer.load_state_dict(state["balancer"])
        self.history, self._epoch, self.step = list(state["history"]), list(state["epoch"]), int(state["step"])

    @property
    def wants_after_step(self) -> bool:
        return bool(getattr(self.balancer, "after_step", False))

    @torch.no_grad()
    def after_step(self, model: nn.Module, x: Tensor, ys: dict[str, Tensor]) -> None:
        """Methods that learn from the effect of a step (FAMO) see the same batch's losses after it."""
        out = model(x, tasks=list(ys))
        previous = self.balancer.previous
        parts = {t.name: t.loss(out[t.name], ys[t.name]).float() for t in self.tasks if t.name in ys}
        share = 1.0
        if world()[1] > 1:               # the global losses: the same state on every process
            parts, share = label_weighted(parts, ys, len(x), {t.name: t for t in self.tasks})
        losses = torch.stack([parts[t.name] if t.name in parts else previous[i] for i, t in enumerate(self.tasks)])
        self.balancer.observe(mean_across(losses, share))

    def end_epoch(self, record: dict) -> None:
        if self._epoch:
            self.history.append(torch.stack(self._epoch).mean(0))
            self._epoch = []

    def backward(self, loss: Tensor, parts: dict[str, Tensor], scale: float = 1.0) -> None:
        """Write the update into .grad. `scale`: the grad scaler's factor under fp16; the losses are
        scaled for the backward (no underflow in half precision), the method sees the UNSCALED
        Gramian or gradients, and the written update is scaled back, for the scaler to unscale."""
        if self.balancer.needs == "losses":
            (loss * scale if scale != 1.0 else loss).backward()
            return
        if scale != 1.0:
            parts = {k: v * scale for k, v in parts.items()}
        losses = [parts[t.name] for t in self.tasks if t.name in parts]
        penalty = getattr(self.model, "penalty", None)
        if callable(penalty):   # soft sharing's coupling is no task's loss: its gradient is added as is
            extra = penalty()
            if extra.requires_grad:
                (extra * scale).backward()
        if not self.trunked:
            shared = self.model.shared_parameters() if hasattr(self.model, "shared_parameters") else None
            if world()[1] > 1:
                raise TaskshareError(f"{self.balancer.name} on several processes needs a model with shared features "
                                     f"(HardSharing, MTAN), got {type(self.model).__name__}")
            write_balanced(self.balancer, losses, shared_leaves(losses) if shared is None else shared, scale=scale,
                           buffers=self.buffers)
            return
        z = self.features
        shared = [p for p in self.model.trunk.parameters() if p.requires_grad]
        g_z = self._feature_grads(parts, z)
        if not shared:
            return
        if world()[1] == 1:   # the same function the drop-in Balancing calls
            capture = self.capture if self.capture is not None and self.capture.usable() else None
            write_balanced(self.balancer, losses, shared, z, g_z, self.representation, capture, self.engine,
                           self.chunk, self.buffers, scale)
            return

        # Under fp16 the scaled gradients may overflow: the method is then skipped and the overflow is
        # written on, for the grad scaler to skip the step and lower its scale (at every process alike)
        def weights(K: Tensor) -> Tensor:
            if scale != 1.0 and not torch.isfinite(K).all():
                return torch.full((K.shape[0],), float("nan"), dtype=K.dtype, device=K.device)
            return self.balancer.task_weights(K / scale ** 2)

        def direction(flat: Tensor) -> Tensor:
            if scale != 1.0 and not torch.isfinite(flat).all():
                return flat.sum(0)
            return self.balancer.direction(flat / scale) * scale

        if self.representation:   # several processes from here on
            flat = g_z.reshape(len(losses), -1).float()
            if self.balancer.needs == "gramian":
                # the samples of all processes are disjoint coordinates: the global Gramian is the sum of
                # the local ones (each local mean loss is size x its share of the global mean)
                scaled = flat * self.share    # the global mean loss's feature gradients, this process's rows
                K = sum_across((scaled @ scaled.T).double()) / world()[1] ** 2
                update = (weights(K).to(flat.dtype) @ flat).reshape(z.shape)
            else:
                update = direction(flat).reshape(z.shape)
            torch.autograd.backward(z, update.to(z.dtype))
            return
        # the global per-task gradients, then the same update everywhere
        stacks = per_task_grads(g_z, z, shared, "auto", self.chunk, self.buffers)
        stacks = [mean_across(g, self.share) for g in stacks]
        if self.balancer.needs == "gramian":
            write_weighted(shared, stacks, weights(gramian_of(stacks)))
        else:
            write_grads(shared, direction(torch.cat([g.reshape(g.shape[0], -1) for g in stacks], 1).float()))

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
        out = self.buffers.get("features", (len(names), *z.shape), z)
        for t, g in enumerate(grads[:len(names)]):
            out[t].copy_(g) if g is not None else out[t].zero_()
        return out
