"""Balancing in any training loop: one call that replaces `loss.backward()`.

    balancing = Balancing("upgrad")                     # the caller owns it (and checkpoints it)
    with balancing.capture(model.trunk):                # optional: the Linear-layer kernel
        z = model.trunk(x)
    losses = [loss_fn(head(z), y) for head, y in ...]
    balancing.backward(losses, features=z)              # .grad filled; optimizer.step() follows

What is shared is what the tasks' losses reach in common: by default the parameters upstream of
`features` (parameter level), or, without features, every parameter that two or more losses reach
(any model: soft sharing, cross-stitch, MMoE, ...). Every other parameter gets the plain sum of its
tasks' gradients, as it would from `sum(losses).backward()`. fit_multitask writes .grad through the
same functions, so the two give the same update.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from .base import Balancer
from .build import build_balancer
from .jacobian import Buffers, gramian_of, per_task_grads, shared_jacobian, write_grads, write_weighted
from .conv_kernel import LayerCapture, LayerKernelGramian
from .linear_kernel import LinearCapture


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
    T = len(losses)
    if features is not None and feature_grads is None:
        others = [p for p in graph_leaves(losses, [features]) if all(p is not s for s in shared)]
        feature_grads = buffers.get("features", (T, *features.shape), features)
        for t, loss in enumerate(losses):
            if not loss.requires_grad:
                feature_grads[t].zero_()
                continue
            grads = torch.autograd.grad(loss, [features, *others], retain_graph=True, allow_unused=True)
            feature_grads[t].copy_(grads[0]) if grads[0] is not None else feature_grads[t].zero_()
            _accumulate(others, grads[1:])

    def weights(K: Tensor) -> Tensor:
        if scale != 1.0 and not torch.isfinite(K).all():   # fp16 overflow: written on for the scaler to skip
            return torch.full((K.shape[0],), float("nan"), dtype=K.dtype, device=K.device)
        return method.task_weights(K / scale ** 2)

    def direction(flat: Tensor) -> Tensor:
        if scale != 1.0 and not torch.isfinite(flat).all():
            return flat.sum(0)
        return method.direction(flat / scale) * scale

    if features is None:
        if representation:
            raise TaskshareError(f"{method.name}: the representation level needs the shared features "
                                 f"(features=...)")
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
            write_weighted(shared, stacks, weights(gramian_of(stacks)))
        else:
            write_grads(shared, direction(torch.cat([g.reshape(T, -1) for g in stacks], 1).float()))
        return
    z = features
    if representation:
        flat = feature_grads.reshape(T, -1).float()
        torch.autograd.backward(z, direction(flat).reshape(z.shape).to(z.dtype))
        return
    if not shared:
        return
    if method.needs == "gramian" and capture is not None and capture.usable():
        kernel = LayerKernelGramian(feature_grads, z, shared, capture, "sequential" if engine == "kernel" else engine,
                               chunk, buffers)
        kernel.write(weights(kernel.gramian()))
    elif method.needs == "gramian":   # never builds the (T, P) matrix
        stacks = per_task_grads(feature_grads, z, shared, "auto" if engine == "kernel" else engine, chunk, buffers)
        write_weighted(shared, stacks, weights(gramian_of(stacks)))
    else:
        write_grads(shared, direction(shared_jacobian(feature_grads, z, shared, chunk).float()))


class Balancing:
    """A balancing method and its bookkeeping, owned by the caller's loop: the step count, the
    per-epoch loss history (DWA), the method's learned state (uncertainty, GradNorm, FAMO, GradVac),
    all in `state_dict()`. Loss-weighting methods with learned parameters need `parameters()` in the
    optimizer, as fit_multitask does."""

    def __init__(self, method: Any = "upgrad", num_tasks: int | None = None, representation: bool = False,
                 engine: str = "auto", chunk: int | None = None, model: nn.Module | None = None):
        if engine not in ("auto", "kernel", "batched", "sequential"):
            raise TaskshareError(f"engine must be 'auto', 'kernel', 'batched' or 'sequential', got {engine!r}")
        self.method = build_balancer(method, num_tasks or 2)
        if num_tasks is None and getattr(self.method, "num_tasks", None) is not None and not isinstance(method, Balancer):
            raise TaskshareError(f"{self.method.name} keeps per-task state: give num_tasks=")
        if representation and (self.method.needs == "losses" or not self.method.representation_ok):
            raise TaskshareError(f"{self.method.name} cannot run at the representation level; it applies to "
                                 f"gradient methods that leave the trunk a gradient")
        if hasattr(self.method, "attach"):
            if model is None:
                raise TaskshareError(f"{self.method.name} measures gradients on a shared layer: give model= "
                                     f"(a model with a .trunk)")
            self.method.attach(model)
        self.representation, self.engine, self.chunk = representation, engine, chunk
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
        self._capture = LayerCapture(trunk, [p for p in trunk.parameters() if p.requires_grad],
                                     convs=self.engine == "kernel")
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
        stacked = torch.stack([l.detach().float() for l in losses])
        self._epoch.append(stacked)
        self.step += 1
        if self.method.needs == "losses":
            loss = self.method.task_loss(torch.stack(losses), self.step, self.history)
            (loss * scale if scale != 1.0 else loss).backward()
            return
        if scale != 1.0:
            losses = [l * scale for l in losses]
        if shared is None:
            shared = graph_leaves([features]) if features is not None else shared_leaves(losses)
        capture = self._capture if features is not None else None
        self._capture = None
        write_balanced(self.method, losses, list(shared), features, None, self.representation, capture,
                       self.engine, self.chunk, self.buffers, scale)

    def end_epoch(self) -> None:
        """Close an epoch of the loss history (DWA weighs tasks by how their epoch losses fell)."""
        if self._epoch:
            self.history.append(torch.stack(self._epoch).mean(0))
            self._epoch = []

    @property
    def wants_after_step(self) -> bool:
        return bool(getattr(self.method, "after_step", False))

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
    keeps_state = any(True for _ in built.parameters()) or any(True for _ in built.buffers()) or \
        getattr(built, "uses_history", False)
    if keeps_state and not isinstance(method, Balancer):
        raise TaskshareError(f"{built.name} keeps state between steps; keep a Balancing({built.name!r}, "
                             f"num_tasks={n}) and call its backward")
    Balancing(built, n, representation).backward(losses, shared, features)
