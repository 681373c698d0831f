"""Per-task gradients on the shared parameters, computed the fast way: each task's gradient with
respect to the shared features (cheap: only its head is differentiated), then ONE batched backward
through the trunk (`is_grads_batched`, vectorised over tasks) instead of T full backward passes.
Writing .grad is the trainer's business, so these engines live here and not beside the methods."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class Buffers:
    """Reusable result tensors, one per name, reallocated only when a shape, dtype or device changes.
    Owned by one training run (no global state)."""

    def __init__(self) -> None:
        self._store: dict[str, Tensor] = {}

    def get(self, key: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        buf = self._store.get(key)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._store[key] = like.new_empty(shape)
        return buf


def shared_jacobian(feature_grads: Tensor, features: Tensor, params: Sequence[Tensor],
                    chunk: int | None = None) -> Tensor:
    """(T, P): the per-task gradients on `params` as one matrix, by a batched vector-Jacobian product
    through the trunk. `chunk` bounds how many tasks go through at once (memory); None = all."""
    stacks = per_task_grads(feature_grads, features, params, "batched", chunk)
    return torch.cat([g.reshape(g.shape[0], -1) for g in stacks], 1)


def per_task_grads(feature_grads: Tensor, features: Tensor, params: Sequence[Tensor], engine: str = "auto",
                   chunk: int | None = None, buffers: Buffers | None = None) -> list[Tensor]:
    """For each parameter, its (T, *shape) stack of per-task gradients, without ever concatenating a
    (T, P) matrix. engine: "batched" (one vectorised backward; fastest on GPUs), "sequential" (one
    trunk backward per task from the feature gradients; measured faster on CPUs), or "auto"."""
    T = feature_grads.shape[0]
    if engine == "auto":
        engine = "batched" if features.is_cuda else "sequential"
    if engine == "batched":
        size = chunk or T
        parts = []
        for start in range(0, T, size):
            block = feature_grads[start:start + size]
            grads = torch.autograd.grad(features, list(params), grad_outputs=block, is_grads_batched=True,
                                        retain_graph=True, allow_unused=True)
            parts.append([g if g is not None else torch.zeros((len(block), *p.shape), dtype=p.dtype, device=p.device)
                          for g, p in zip(grads, params)])
        return [torch.cat([part[i] for part in parts]) for i in range(len(params))]
    buffers = buffers or Buffers()
    stacks = [buffers.get(f"param{i}", (T, *p.shape), p) for i, p in enumerate(params)]
    for t in range(T):
        row = torch.autograd.grad(features, list(params), grad_outputs=feature_grads[t], retain_graph=True,
                                  allow_unused=True)
        for stack, g in zip(stacks, row):
            stack[t].copy_(g) if g is not None else stack[t].zero_()
    return stacks


def gramian_of(stacks: Sequence[Tensor]) -> Tensor:
    """K = G G^T accumulated parameter by parameter (float64 accumulation for the small T x T result)."""
    K = None
    for g in stacks:
        flat = g.reshape(g.shape[0], -1)
        part = (flat @ flat.T).double()
        K = part if K is None else K + part
    return K


def write_weighted(params: Sequence[Tensor], stacks: Sequence[Tensor], weights: Tensor) -> None:
    """.grad of each parameter = sum_t w_t g_t (the trainer's job only)."""
    for p, g in zip(params, stacks):
        update = torch.tensordot(weights.to(g.dtype), g, dims=1)
        p.grad = update if p.grad is None else p.grad + update


def sequential_jacobian(losses: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """The slow reference: one full backward per task (used by tests and as a fallback)."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]))
    return torch.stack(rows)


def write_grads(params: Sequence[Tensor], flat: Tensor) -> None:
    """Split a flat direction over `params` and store it as their .grad (the trainer's job only)."""
    offset = 0
    for p in params:
        n = p.numel()
        piece = flat[offset:offset + n].view_as(p).to(p.dtype)
        p.grad = piece.clone() if p.grad is None else p.grad + piece
        offset += n
