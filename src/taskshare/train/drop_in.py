"""Balancing in any training loop: one call that replaces `loss.backward()`.

    balancing = Balancing("upgrad")                     # the caller owns it (and checkpoints it)
    with balancing.capture(model.trunk):                # optional: the Linear/Conv2d kernel
        z = model.trunk(x)
    losses = [loss_fn(head(z), y) for head, y in ...]
    balancing.backward(losses, features=z)              # .grad filled; optimizer.step() follows

What is shared is what the tasks' losses reach in common: by default the parameters upstream of
`features` (parameter level), or, without features, every parameter that two or more losses reach
(any model: soft sharing, cross-stitch, MMoE, ...). Every other parameter gets the plain sum of its
tasks' gradients, as it would from `sum(losses).backward()`. fit_multitask owns one of these, so the
two give the same update. It writes .grad, which is the trainer's business: it lives in train/, the
methods it drives in taskshare.balancing.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..balancing import Balancer, build_balancer
from ..balancing.base import check_present
from ..distributed import mean_across, world
from ..errors import TaskshareError
from .jacobian import Buffers
from .conv_kernel import LayerCapture
from .update import graph_leaves, shared_leaves, write_across, write_balanced

__all__ = ["Balancing", "backward", "graph_leaves", "last_shared_layer", "shared_leaves"]


def last_shared_layer(method: Balancer, model: nn.Module | None) -> Tensor:
    """The weight whose per-task gradients a method that `needs_layer_gradients` reads: the last
    trainable trunk parameter with 2+ dims."""
    if model is None:
        raise TaskshareError(f"{method.name} measures gradients on a shared layer: give model= (a model with a .trunk)")
    trunk = getattr(model, "trunk", None)
    if trunk is None:
        raise TaskshareError(f"{method.name} needs a shared trunk (a HardSharing model), got {type(model).__name__}")
    weights = [p for p in trunk.parameters() if p.requires_grad and p.dim() >= 2]
    if not weights:
        raise TaskshareError(f"{method.name}: the trunk has no trainable weight matrix to measure gradients on")
    return weights[-1]


def _layer_grad(loss: Tensor, layer: Tensor) -> Tensor:
    """d loss / d layer; zeros where the loss does not reach it."""
    grad = torch.autograd.grad(loss, [layer], retain_graph=True, allow_unused=True)[0] if loss.requires_grad else None
    return torch.zeros_like(layer) if grad is None else grad


# `reduce=` is gone with no equivalent to map it to: it was a caller's callable (the mean across processes),
# applied to the loss history and the loss methods' losses only, while across_processes=True makes the
# losses, the per-task gradients and the after-step losses global with taskshare's own share-weighted mean.
# Quietly reading one as the other would change a gradient method's update, so it is refused by name.
_REMOVED = object()
_REDUCE_REMOVED = ("Balancing(reduce={reduce!r}): reduce= was removed, and a reduction of your own is no longer "
                   "accepted; pass across_processes=True instead (with several processes Balancing then takes "
                   "the mean across them itself, weighted by set_share, for the losses, the per-task gradients "
                   "and the after-step losses), or leave both out in one process")


class Balancing:
    """A balancing method and its bookkeeping, owned by the caller's loop: the step count, the
    per-epoch loss history (DWA), the method's learned state (uncertainty, GradNorm, FAMO, GradVac),
    all in `state_dict()`. Loss-weighting methods with learned parameters need `parameters()` in the
    optimizer, as fit_multitask does. It computes what the method declares it needs (the last shared
    layer's gradients for GradNorm: give `model=`). `across_processes`: with several processes (each
    holding `share` of the global batch, set by `set_share`), the method sees the global losses,
    layer gradients and per-task gradients, so every process keeps the same state and writes the
    same update; a no-op when alone. (It replaced `reduce=`, which is refused with a message naming it.)"""

    def __init__(self, method: Any = "upgrad", num_tasks: int | None = None, representation: bool = False,
                 engine: str = "auto", chunk: int | None = None, model: nn.Module | None = None,
                 across_processes: bool = False, *, reduce: Any = _REMOVED):
        if reduce is not _REMOVED:
            raise TaskshareError(_REDUCE_REMOVED.format(reduce=reduce))
        if engine not in ("auto", "kernel", "batched", "sequential"):
            raise TaskshareError(f"engine must be 'auto', 'kernel', 'batched' or 'sequential', got {engine!r}")
        self.method = build_balancer(method, num_tasks or 2)
        if num_tasks is None and getattr(self.method, "num_tasks", None) is not None and not isinstance(method, Balancer):
            raise TaskshareError(f"{self.method.name} keeps per-task state: give num_tasks=")
        if representation and (self.method.needs == "losses" or not self.method.representation_ok):
            raise TaskshareError(f"{self.method.name} cannot run at the representation level: the representation "
                                 f"level applies to gradient methods that leave the trunk a gradient")
        self.layer = last_shared_layer(self.method, model) if self.method.needs_layer_gradients else None
        self.representation, self.engine, self.chunk = representation, engine, chunk
        self.across_processes, self.share = across_processes, 1.0
        self.step, self.history, self._epoch = 0, [], []
        self.buffers = Buffers()
        self._capture: LayerCapture | None = None

    def parameters(self) -> Iterable[nn.Parameter]:
        return self.method.parameters()

    def to(self, device: Any) -> "Balancing":
        self.method.to(device)
        return self

    def capture(self, trunk: nn.Module):
        """`with balancing.capture(trunk): z = trunk(x)` records the trunk's Linear layers (and, with
        engine "kernel", its Conv2d layers) for the kernel Gramian (parameter level, Gramian methods);
        elsewhere a no-op."""
        self._capture = self.recorder(trunk)
        return self._capture if self._capture is not None else nullcontext()

    def recorder(self, trunk: nn.Module) -> LayerCapture | None:
        """A new capture of `trunk`'s layers for the kernel Gramian; None where the kernel does not apply."""
        if self.method.needs != "gramian" or self.representation or self.engine not in ("auto", "kernel"):
            return None
        return LayerCapture(trunk, [p for p in trunk.parameters() if p.requires_grad], convs=self.engine == "kernel")

    def backward(self, losses: Sequence[Tensor] | Tensor, shared: Iterable[Tensor] | None = None,
                 features: Tensor | None = None, scale: float = 1.0,
                 present: Sequence[bool] | Tensor | None = None) -> None:
        """Add this step's update into .grad (accumulates, like loss.backward()). `losses`: one scalar per
        task. `shared`: the shared parameters (default: those upstream of `features`, or, without
        features, every parameter two losses reach). `scale`: a grad scaler's factor under fp16 (pass
        scaler.get_scale()); the update is written scaled, so scaler.step() follows as usual.
        `present`: one bool per task, False for a task with no known label in this batch: it adds
        nothing and the method balances the others as if it were not there (default: all present)."""
        losses = list(losses.unbind(0)) if isinstance(losses, Tensor) else list(losses)
        if not losses:
            raise TaskshareError("backward needs one loss per task; got none")
        bad = [i for i, l in enumerate(losses) if not isinstance(l, Tensor) or l.dim() != 0]
        if bad:
            raise TaskshareError(f"loss {bad[0]} is not a scalar tensor; expected one scalar loss per task")
        mask = check_present(None if present is None else torch.as_tensor(present), len(losses), self.method.name)
        if self.method.needs == "losses":
            loss = self.objective(torch.stack(losses), mask)
            (loss * scale if scale != 1.0 else loss).backward()
            return
        self._count(torch.stack([l.detach() for l in losses]), mask)
        if mask is not None:
            losses = [l for l, p in zip(losses, mask.tolist()) if p]
            if not losses:
                return                     # no task labelled: no update
        if scale != 1.0:
            losses = [l * scale for l in losses]
        if shared is None:
            shared = graph_leaves([features]) if features is not None else shared_leaves(losses)
        self.write(losses, list(shared), features, scale=scale, present=mask)

    def objective(self, losses: Tensor, present: Tensor | None = None) -> Tensor:
        """This step's scalar for a (T,) vector of task losses: a loss-weighting method's objective, the
        plain sum for a gradient method (whose update `write` makes). Counts the step and records the
        losses for the epoch history. `present`: (T,) bool, False for a task without a known label in
        the batch (the same on every process)."""
        present = check_present(present, len(losses), self.method.name)
        if present is not None and bool(present.all()):
            present = None
        self._count(losses, present)
        if self.method.needs != "losses":
            return losses.sum()
        if self._several() and self.method.across_processes == "linearise":
            return self._linearised(losses, present)
        if not self.method.needs_layer_gradients:
            return self.method.task_loss(losses, self.step, self.history, present=present)
        layer_grads = [self._reduced(_layer_grad(loss, self.layer)) for loss in losses]
        return self.method.task_loss(losses, self.step, self.history, layer_grads, self._reduced(losses.detach()),
                                     present=present)

    def write(self, losses: Sequence[Tensor], shared: Sequence[Tensor], features: Tensor | None = None,
              feature_grads: Tensor | None = None, scale: float = 1.0, capture: LayerCapture | None = None,
              present: Tensor | None = None) -> None:
        """A gradient method's update into .grad (see write_balanced); uses `capture`, or the one this
        step's forward ran under `capture(trunk)`, if any. `present`: with some tasks absent, the (T,)
        mask of those `losses` (and `feature_grads`) belong to, one row per present task."""
        armed = self._capture if features is not None else None
        self._capture = None
        method = self.method if present is None or bool(present.all()) else PresentTasks(self.method, present)
        if self._several():
            write_across(method, losses, shared, features, feature_grads, self.representation, self.share,
                         self.chunk, self.buffers, scale)
            return
        write_balanced(method, losses, shared, features, feature_grads, self.representation, capture or armed,
                       self.engine, self.chunk, self.buffers, scale)

    def set_share(self, share: float) -> None:
        """Several processes: this one's share of the global batch (its rows x processes / all rows),
        which weights every mean across them; 1.0 for equal shards."""
        self.share = share

    def _count(self, losses: Tensor, present: Tensor | None = None) -> None:
        seen = losses.detach().float()
        if present is not None:   # an absent task's zero is no loss: NaN, left out of its epoch mean
            seen = torch.where(present.to(seen.device), seen, torch.full_like(seen, float("nan")))
        self._epoch.append(self._reduced(seen))   # the same history on every process
        self.step += 1

    def _several(self) -> bool:
        return self.across_processes and world()[1] > 1

    def _reduced(self, t: Tensor) -> Tensor:
        """The mean across processes, each weighted by its share (unchanged when alone)."""
        return mean_across(t, self.share) if self.across_processes else t

    def _linearised(self, losses: Tensor, present: Tensor | None = None) -> Tensor:
        """Several processes: the method sees the GLOBAL task losses (the mean of the processes' means),
        so its state (FAMO's logits, a loss history) moves the same way everywhere. Its objective f is
        then linearised there: each local loss is weighted by df/dL_t at the global losses, and the
        averaged gradients are exactly those of f on the whole batch, for any f (GLS, log scaling, FAMO
        included). The method's own parameters get the gradient of f itself, the same on every process."""
        point = self._reduced(losses.detach()).requires_grad_(True)
        objective = self.method.task_loss(point, self.step, self.history, present=present)
        (slope,) = torch.autograd.grad(objective, point, retain_graph=True, allow_unused=True)
        slope = torch.zeros_like(point) if slope is None else slope.detach()
        return objective + (slope * (losses - losses.detach())).sum()

    def end_epoch(self) -> None:
        """Close an epoch of the loss history (DWA weighs tasks by how their epoch losses fell)."""
        if self._epoch:
            losses = torch.stack(self._epoch)
            if bool(losses.isnan().any()):
                # each task's mean over the steps that labelled it; one never labelled this epoch keeps
                # the last epoch's mean (NaN without one: DWA reads it as no change)
                mean = losses.nanmean(0)
                if self.history:
                    mean = torch.where(mean.isnan(), self.history[-1].to(mean), mean)
            else:
                mean = losses.mean(0)
            self.history.append(mean)
            self._epoch = []

    @property
    def wants_after_step(self) -> bool:
        return self.method.observes_step

    @torch.no_grad()
    def after_step(self, losses_after: Sequence[Tensor] | Tensor,
                   present: Sequence[bool] | Tensor | None = None) -> None:
        """FAMO: the same batch's task losses after optimizer.step() (across processes: their global
        means, so the method's state moves the same way everywhere); `present` as for backward."""
        if not self.wants_after_step:
            return
        if not isinstance(losses_after, Tensor):
            losses_after = torch.stack([torch.as_tensor(l).detach().float() for l in losses_after])
        mask = check_present(None if present is None else torch.as_tensor(present), len(losses_after),
                             self.method.name)
        if mask is not None and bool(mask.all()):
            mask = None
        if mask is not None and not bool(mask.any()):
            return
        losses_after = self._reduced(losses_after.detach()).float()
        if mask is None:
            self.method.observe(losses_after)
        else:
            self.method.observe(losses_after, mask)

    def state_dict(self) -> dict:
        return {"balancer": self.method.state_dict(), "history": list(self.history), "epoch": list(self._epoch),
                "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state["balancer"])
        self.history, self._epoch, self.step = list(state["history"]), list(state["epoch"]), int(state["step"])


class PresentTasks:
    """A gradient method as update.py sees it in a step some tasks are absent from: it is handed the
    present tasks' rows, and passes the mask on, for a method whose state is per task."""

    def __init__(self, method: Balancer, present: Tensor):
        self.method, self.present = method, present

    def __getattr__(self, name: str) -> Any:
        return getattr(self.method, name)

    def task_weights(self, gramian: Tensor, rounding: float | None = None) -> Tensor:
        return self.method.task_weights(gramian, self.present, rounding)

    def direction(self, grads: Tensor) -> Tensor:
        return self.method.direction(grads, self.present)


def backward(losses: Sequence[Tensor] | Tensor, shared: Iterable[Tensor] | None = None, method: Any = "upgrad",
             features: Tensor | None = None, representation: bool = False) -> None:
    """One balanced backward with a stateless method (a name, a mapping or an instance); for methods
    that keep state between steps (uncertainty, DWA, GradNorm, FAMO, GradVac), keep a `Balancing`."""
    n = len(losses)
    built = build_balancer(method, n)
    keeps_state = any(True for _ in built.parameters()) or any(True for _ in built.buffers())
    if keeps_state and not isinstance(method, Balancer):
        raise TaskshareError(f"{built.name} keeps state between steps; keep a Balancing({built.name!r}, "
                             f"num_tasks={n}) and call its backward")
    Balancing(built, n, representation).backward(losses, shared, features)
