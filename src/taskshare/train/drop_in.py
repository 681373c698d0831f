"""Balancing in any training loop: one call that replaces `loss.backward()`.

    balancing = Balancing("upgrad")                     # the caller owns it (and checkpoints it)
    with balancing.capture(model.trunk):                # optional: the Linear-layer kernel
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
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..balancing import Balancer, build_balancer
from ..distributed import world
from ..errors import TaskshareError
from .jacobian import Buffers, gramian_of, per_task_grads, shared_jacobian, write_grads, write_weighted
from .linear_kernel import KernelGramian, LinearCapture


def graph_leaves(roots: Sequence[Tensor], stop: Sequence[Tensor] = ()) -> list[Tensor]:
    """The leaf tensors requiring grad that `roots` were computed from, in first-seen order, not
    looking past the tensors in `stop` (their graph is someone else's)."""
    stop_nodes = {t.grad_fn for t in stop if t.grad_fn is not None}
    stop_ids = {id(t) for t in stop}
    seen_nodes, out, seen = set(), [], set()
    todo = [r.grad_fn for r in roots if r.grad_fn is not None]
    for r in roots:
        if r.grad_fn is None and r.requires_grad and id(r) not in stop_ids and id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    while todo:
        node = todo.pop()
        if node is None or node in seen_nodes or node in stop_nodes:
            continue
        seen_nodes.add(node)
        leaf = getattr(node, "variable", None)
        if leaf is not None:
            if id(leaf) not in seen and id(leaf) not in stop_ids:
                seen.add(id(leaf))
                out.append(leaf)
            continue
        todo.extend(n for n, _ in node.next_functions)
    return out


def shared_leaves(losses: Sequence[Tensor]) -> list[Tensor]:
    """Parameters that at least two of the losses reach: what the tasks share in any architecture."""
    counts: dict[int, int] = {}
    first: dict[int, Tensor] = {}
    for loss in losses:
        for p in graph_leaves([loss]):
            counts[id(p)] = counts.get(id(p), 0) + 1
            first.setdefault(id(p), p)
    return [p for i, p in first.items() if counts[i] >= 2]


def _accumulate(params: Sequence[Tensor], grads: Sequence[Tensor | None]) -> None:
    for p, g in zip(params, grads):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


def guarded_weights(method: Balancer, gramian: Tensor, scale: float) -> Tensor:
    """The method's task weights for a Gramian of gradients scaled by `scale` (a grad scaler's factor).
    Under fp16 the scaled gradients may overflow: the method is then skipped and NaN weights write the
    overflow on, for the grad scaler to skip the step and lower its scale."""
    if scale != 1.0 and not torch.isfinite(gramian).all():
        return torch.full((gramian.shape[0],), float("nan"), dtype=gramian.dtype, device=gramian.device)
    return method.task_weights(gramian / scale ** 2)


def guarded_direction(method: Balancer, flat: Tensor, scale: float) -> Tensor:
    """The method's direction for (T, P) gradients scaled by `scale`, written back scaled; an overflow
    is passed on as the plain sum, for the grad scaler to see."""
    if scale != 1.0 and not torch.isfinite(flat).all():
        return flat.sum(0)
    return method.direction(flat / scale) * scale


def write_balanced(method: Balancer, losses: Sequence[Tensor], shared: Sequence[Tensor],
                   features: Tensor | None = None, feature_grads: Tensor | None = None,
                   representation: bool = False, capture: LinearCapture | None = None, engine: str = "auto",
                   chunk: int | None = None, buffers: Buffers | None = None, scale: float = 1.0) -> None:
    """The balanced update of a gradient method (needs "gramian" or "gradients") added into .grad.

    With `features` (the shared representation z): each task's gradient at z, then per-task gradients on
    `shared` by backpropagating those (the Linear-layer kernel when `capture` recorded the forward), or,
    with `representation`, the method's combination of the feature gradients backpropagated once.
    `feature_grads` (T, *z.shape), when the caller already has them, skips that part; the caller has then
    also written every other parameter's gradient. Without features: one backward per task on `shared`.
    `scale`: the losses are already multiplied by a grad scaler's factor; the method sees the unscaled
    Gramian or gradients and the written update stays scaled, for the scaler to unscale."""
    buffers = buffers or Buffers()
    shared = [p for p in shared if p.requires_grad]
    if features is None:
        if representation:
            raise TaskshareError(f"{method.name}: the representation level needs the shared features "
                                 f"(features=...)")
        _write_per_loss(method, losses, shared, scale)
        return
    if feature_grads is None:
        feature_grads = _feature_grads(losses, features, shared, buffers)
    _write_through_features(method, features, feature_grads, shared, representation, capture, engine, chunk,
                            buffers, scale)


def _feature_grads(losses: Sequence[Tensor], features: Tensor, shared: Sequence[Tensor], buffers: Buffers) -> Tensor:
    """(T, *features.shape) d loss_t / d features; the same backward accumulates the gradient of every
    parameter neither shared nor upstream of the features (the heads) into .grad."""
    others = [p for p in graph_leaves(losses, [features]) if all(p is not s for s in shared)]
    feature_grads = buffers.get("features", (len(losses), *features.shape), features)
    for t, loss in enumerate(losses):
        if not loss.requires_grad:
            feature_grads[t].zero_()
            continue
        grads = torch.autograd.grad(loss, [features, *others], retain_graph=True, allow_unused=True)
        feature_grads[t].copy_(grads[0]) if grads[0] is not None else feature_grads[t].zero_()
        _accumulate(others, grads[1:])
    return feature_grads


def _write_per_loss(method: Balancer, losses: Sequence[Tensor], shared: Sequence[Tensor], scale: float) -> None:
    """No shared features (soft sharing, cross-stitch, any model): one backward per task on `shared`;
    every other parameter gets the sum of its tasks' gradients."""
    T = len(losses)
    others = [p for p in graph_leaves(losses) if all(p is not s for s in shared)]
    stacks = [torch.zeros((T, *p.shape), dtype=p.dtype, device=p.device) for p in shared]
    for t, loss in enumerate(losses):
        if not loss.requires_grad:
            continue
        grads = torch.autograd.grad(loss, [*shared, *others], retain_graph=True, allow_unused=True)
        for stack, g in zip(stacks, grads[:len(shared)]):
            if g is not None:
                stack[t].copy_(g)
        _accumulate(others, grads[len(shared):])
    if not shared:
        return
    if method.needs == "gramian":
        write_weighted(shared, stacks, guarded_weights(method, gramian_of(stacks), scale))
    else:
        write_grads(shared, guarded_direction(method, torch.cat([g.reshape(T, -1) for g in stacks], 1).float(), scale))


def _write_through_features(method: Balancer, z: Tensor, feature_grads: Tensor, shared: Sequence[Tensor],
                            representation: bool, capture: LinearCapture | None, engine: str, chunk: int | None,
                            buffers: Buffers, scale: float) -> None:
    """From each task's gradient at the features z: the method's combination backpropagated once
    (representation level), or per-task gradients on `shared` by the cheapest engine."""
    if representation:
        flat = feature_grads.reshape(feature_grads.shape[0], -1).float()
        torch.autograd.backward(z, guarded_direction(method, flat, scale).reshape(z.shape).to(z.dtype))
        return
    if not shared:
        return
    if method.needs == "gramian" and capture is not None and capture.usable():
        kernel = KernelGramian(feature_grads, z, shared, capture, "sequential" if engine == "kernel" else engine,
                               chunk, buffers)
        kernel.write(guarded_weights(method, kernel.gramian(), scale))
    elif method.needs == "gramian":   # never builds the (T, P) matrix
        stacks = per_task_grads(feature_grads, z, shared, "auto" if engine == "kernel" else engine, chunk, buffers)
        write_weighted(shared, stacks, guarded_weights(method, gramian_of(stacks), scale))
    else:
        write_grads(shared, guarded_direction(method, shared_jacobian(feature_grads, z, shared, chunk).float(), scale))


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


class Balancing:
    """A balancing method and its bookkeeping, owned by the caller's loop: the step count, the
    per-epoch loss history (DWA), the method's learned state (uncertainty, GradNorm, FAMO, GradVac),
    all in `state_dict()`. Loss-weighting methods with learned parameters need `parameters()` in the
    optimizer, as fit_multitask does. It computes what the method declares it needs (the last shared
    layer's gradients for GradNorm: give `model=`). `reduce`: several processes, the mean across them
    of a per-process tensor (the trainer's; None when alone), applied the way the method declares."""

    def __init__(self, method: Any = "upgrad", num_tasks: int | None = None, representation: bool = False,
                 engine: str = "auto", chunk: int | None = None, model: nn.Module | None = None,
                 reduce: Callable[[Tensor], Tensor] | None = None):
        if engine not in ("auto", "kernel", "batched", "sequential"):
            raise TaskshareError(f"engine must be 'auto', 'kernel', 'batched' or 'sequential', got {engine!r}")
        self.method = build_balancer(method, num_tasks or 2)
        if num_tasks is None and getattr(self.method, "num_tasks", None) is not None and not isinstance(method, Balancer):
            raise TaskshareError(f"{self.method.name} keeps per-task state: give num_tasks=")
        if representation and (self.method.needs == "losses" or not self.method.representation_ok):
            raise TaskshareError(f"{self.method.name} cannot run at the representation level; it applies to "
                                 f"gradient methods that leave the trunk a gradient")
        self.layer = last_shared_layer(self.method, model) if self.method.needs_layer_gradients else None
        self.representation, self.engine, self.chunk, self.reduce = representation, engine, chunk, reduce
        self.step, self.history, self._epoch = 0, [], []
        self.buffers = Buffers()
        self._capture: LinearCapture | None = None

    def parameters(self) -> Iterable[nn.Parameter]:
        return self.method.parameters()

    def to(self, device: Any) -> "Balancing":
        self.method.to(device)
        return self

    def capture(self, trunk: nn.Module):
        """`with balancing.capture(trunk): z = trunk(x)` records the trunk's Linear layers for the
        kernel Gramian (parameter level, Gramian methods); elsewhere a no-op."""
        if self.method.needs != "gramian" or self.representation or self.engine not in ("auto", "kernel"):
            self._capture = None
            return nullcontext()
        self._capture = LinearCapture(trunk, [p for p in trunk.parameters() if p.requires_grad])
        return self._capture

    def backward(self, losses: Sequence[Tensor] | Tensor, shared: Iterable[Tensor] | None = None,
                 features: Tensor | None = None, scale: float = 1.0) -> None:
        """Add this step's update into .grad (accumulates, like loss.backward()). `losses`: one scalar per
        task. `shared`: the shared parameters (default: those upstream of `features`, or, without
        features, every parameter two losses reach). `scale`: a grad scaler's factor under fp16 (pass
        scaler.get_scale()); the update is written scaled, so scaler.step() follows as usual."""
        losses = list(losses.unbind(0)) if isinstance(losses, Tensor) else list(losses)
        if not losses:
            raise TaskshareError("backward needs one loss per task; got none")
        bad = [i for i, l in enumerate(losses) if not isinstance(l, Tensor) or l.dim() != 0]
        if bad:
            raise TaskshareError(f"loss {bad[0]} is not a scalar tensor; expected one scalar loss per task")
        if self.method.needs == "losses":
            loss = self.objective(torch.stack(losses))
            (loss * scale if scale != 1.0 else loss).backward()
            return
        self._count(torch.stack([l.detach() for l in losses]))
        if scale != 1.0:
            losses = [l * scale for l in losses]
        if shared is None:
            shared = graph_leaves([features]) if features is not None else shared_leaves(losses)
        self.write(losses, list(shared), features, scale=scale)

    def objective(self, losses: Tensor) -> Tensor:
        """This step's scalar for a (T,) vector of task losses: a loss-weighting method's objective, the
        plain sum for a gradient method (whose update `write` makes). Counts the step and records the
        losses for the epoch history."""
        self._count(losses)
        if self.method.needs != "losses":
            return losses.sum()
        if self.reduce is not None and world()[1] > 1 and self.method.across_processes == "linearise":
            return self._linearised(losses)
        if not self.method.needs_layer_gradients:
            return self.method.task_loss(losses, self.step, self.history)
        layer_grads = [self._reduced(_layer_grad(loss, self.layer)) for loss in losses]
        return self.method.task_loss(losses, self.step, self.history, layer_grads, self._reduced(losses.detach()))

    def write(self, losses: Sequence[Tensor], shared: Sequence[Tensor], features: Tensor | None = None,
              feature_grads: Tensor | None = None, scale: float = 1.0) -> None:
        """A gradient method's update into .grad (see write_balanced); uses the capture of this step's
        forward, if any."""
        capture = self._capture if features is not None else None
        self._capture = None
        write_balanced(self.method, losses, shared, features, feature_grads, self.representation, capture,
                       self.engine, self.chunk, self.buffers, scale)

    def _count(self, losses: Tensor) -> None:
        self._epoch.append(self._reduced(losses.detach().float()))   # the same history on every process
        self.step += 1

    def _reduced(self, t: Tensor) -> Tensor:
        return t if self.reduce is None else self.reduce(t)

    def _linearised(self, losses: Tensor) -> Tensor:
        """Several processes: the method sees the GLOBAL task losses (the mean of the processes' means),
        so its state (FAMO's logits, a loss history) moves the same way everywhere. Its objective f is
        then linearised there: each local loss is weighted by df/dL_t at the global losses, and the
        averaged gradients are exactly those of f on the whole batch, for any f (GLS, log scaling, FAMO
        included). The method's own parameters get the gradient of f itself, the same on every process."""
        point = self._reduced(losses.detach()).requires_grad_(True)
        objective = self.method.task_loss(point, self.step, self.history)
        (slope,) = torch.autograd.grad(objective, point, retain_graph=True, allow_unused=True)
        slope = torch.zeros_like(point) if slope is None else slope.detach()
        return objective + (slope * (losses - losses.detach())).sum()

    def end_epoch(self) -> None:
        """Close an epoch of the loss history (DWA weighs tasks by how their epoch losses fell)."""
        if self._epoch:
            self.history.append(torch.stack(self._epoch).mean(0))
            self._epoch = []

    @property
    def wants_after_step(self) -> bool:
        return self.method.observes_step

    @torch.no_grad()
    def after_step(self, losses_after: Sequence[Tensor] | Tensor) -> None:
        """FAMO: the same batch's task losses after optimizer.step()."""
        if self.wants_after_step:
            self.method.observe(torch.stack([torch.as_tensor(l).detach().float() for l in losses_after]))

    def state_dict(self) -> dict:
        return {"balancer": self.method.state_dict(), "history": list(self.history), "epoch": list(self._epoch),
                "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state["balancer"])
        self.history, self._epoch, self.step = list(state["history"]), list(state["epoch"]), int(state["step"])


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
