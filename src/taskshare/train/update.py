"""The balanced update of a gradient method written into .grad, from per-task losses: through the
shared features (one backward through the heads, then the trunk engines of jacobian.py,
linear_kernel.py and conv_kernel.py) or, for any model, one backward per task on what the tasks share;
on several processes, from the global per-task gradients (write_across). Used by the drop-in Balancing,
which fit_multitask's BalancedStep drives, so both write the same update."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..balancing import Balancer
from ..distributed import mean_across, sum_across, world
from ..errors import TaskshareError
from .jacobian import Buffers, gramian_of, per_task_grads, shared_jacobian, write_grads, write_weighted
from .conv_kernel import LayerCapture, LayerKernelGramian


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


def guarded_weights(method: Balancer, gramian: Tensor, scale: float, products: torch.dtype) -> Tensor:
    """The method's task weights for a Gramian of gradients scaled by `scale` (a grad scaler's factor).
    Under fp16 the scaled gradients may overflow: the method is then skipped and NaN weights write the
    overflow on, for the grad scaler to skip the step and lower its scale. `products`: the dtype its
    products were computed in (the Gramian is accumulated in float64 but is only as exact as they are)."""
    if scale != 1.0 and not torch.isfinite(gramian).all():
        return torch.full((gramian.shape[0],), float("nan"), dtype=gramian.dtype, device=gramian.device)
    return method.task_weights(gramian / scale ** 2, rounding=torch.finfo(products).eps)


def guarded_direction(method: Balancer, flat: Tensor, scale: float) -> Tensor:
    """The method's direction for (T, P) gradients scaled by `scale`, written back scaled; an overflow
    is passed on as the plain sum, for the grad scaler to see."""
    if scale != 1.0 and not torch.isfinite(flat).all():
        return flat.sum(0)
    return method.direction(flat / scale) * scale


def write_balanced(method: Balancer, losses: Sequence[Tensor], shared: Sequence[Tensor],
                   features: Tensor | None = None, feature_grads: Tensor | None = None,
                   representation: bool = False, capture: LayerCapture | None = None, engine: str = "auto",
                   chunk: int | None = None, buffers: Buffers | None = None, scale: float = 1.0) -> None:
    """The balanced update of a gradient method (needs "gramian" or "gradients") added into .grad.

    With `features` (the shared representation z): each task's gradient at z, then per-task gradients on
    `shared` by backpropagating those (the Linear and Conv2d kernels when `capture` recorded the forward), or,
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
    if shared:
        _write_stacks(method, shared, stacks, scale)


def _write_stacks(method: Balancer, shared: Sequence[Tensor], stacks: Sequence[Tensor], scale: float) -> None:
    """The update from per-task gradients on `shared` (one (T, *p.shape) stack per parameter)."""
    if method.needs == "gramian":
        write_weighted(shared, stacks, guarded_weights(method, gramian_of(stacks), scale, stacks[0].dtype))
    else:
        flat = torch.cat([g.reshape(g.shape[0], -1) for g in stacks], 1).float()
        write_grads(shared, guarded_direction(method, flat, scale))


def _write_through_features(method: Balancer, z: Tensor, feature_grads: Tensor, shared: Sequence[Tensor],
                            representation: bool, capture: LayerCapture | None, engine: str, chunk: int | None,
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
        kernel = LayerKernelGramian(feature_grads, z, shared, capture, "sequential" if engine == "kernel" else engine,
                                    chunk, buffers)
        kernel.write(guarded_weights(method, kernel.gramian(), scale, feature_grads.dtype))
    elif method.needs == "gramian":   # never builds the (T, P) matrix
        _write_stacks(method, shared, per_task_grads(feature_grads, z, shared, "auto" if engine == "kernel" else engine,
                                                     chunk, buffers), scale)
    else:
        write_grads(shared, guarded_direction(method, shared_jacobian(feature_grads, z, shared, chunk).float(), scale))


def write_across(method: Balancer, losses: Sequence[Tensor], shared: Sequence[Tensor], features: Tensor | None,
                 feature_grads: Tensor | None, representation: bool, share: float, chunk: int | None,
                 buffers: Buffers, scale: float = 1.0) -> None:
    """write_balanced on several processes, each holding `share` of the global batch: the method sees
    the GLOBAL per-task gradients (or Gramian), so every process writes the same update."""
    if features is None:
        raise TaskshareError(f"{method.name} on several processes needs a model with shared features "
                             f"(HardSharing, MTAN), or features=")
    shared = [p for p in shared if p.requires_grad]
    if feature_grads is None:
        feature_grads = _feature_grads(losses, features, shared, buffers)
    if representation:
        _global_representation(method, feature_grads, features, share, scale)
    elif shared:
        stacks = per_task_grads(feature_grads, features, shared, "auto", chunk, buffers)
        _write_stacks(method, shared, [mean_across(g, share) for g in stacks], scale)


def _global_representation(method: Balancer, g_z: Tensor, z: Tensor, share: float, scale: float) -> None:
    """Representation level: the method's combination of the global feature gradients, backpropagated
    through this process's trunk."""
    flat = g_z.reshape(g_z.shape[0], -1).float()
    if method.needs == "gramian":
        # the samples of all processes are disjoint coordinates: the global Gramian is the sum of
        # the local ones (each local mean loss is size x its share of the global mean)
        scaled = flat * share    # the global mean loss's feature gradients, this process's rows
        K = sum_across((scaled @ scaled.T).double()) / world()[1] ** 2
        update = (guarded_weights(method, K, scale, flat.dtype).to(flat.dtype) @ flat).reshape(z.shape)
    else:
        update = guarded_direction(method, flat, scale).reshape(z.shape)
    torch.autograd.backward(z, update.to(z.dtype))
