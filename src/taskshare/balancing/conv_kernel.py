"""The Gramian of per-task gradients on nn.Conv2d layers from their inputs and output gradients.

Task t's weight gradient of a convolution is D_t U^T: D_t (C_out, N*L) its gradient at the layer's
output (L output positions per sample), U (C_in*k*k, N*L) the unfolded input patches (F.unfold). So
only the output gradients need backpropagating per task (the backward then skips every per-task
weight-gradient convolution), and the T weight gradients of a layer come from ONE matrix product
(T*C_out, N*L) x (N*L, C_in*k*k) instead of T weight-gradient convolutions. The stored per-task
gradients (T, C_out, C_in*k*k) give the Gramian and the weighted update. (The kernel form of the
Linear layers, through U^T U, would need an (N*L)^2 matrix: far dearer for any image.)

Linear layers keep their own kernel (linear_kernel.py); every other shared parameter goes through the
generic per-task path.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .jacobian import Buffers
from .linear_kernel import PLAIN_LINEAR, KernelGramian, LinearCapture


def _unfoldable(m: nn.Module) -> bool:
    """A Conv2d that F.unfold reproduces exactly: zero padding given as numbers, one group."""
    return (type(m) is nn.Conv2d and m.groups == 1 and m.padding_mode == "zeros"
            and not isinstance(m.padding, str))


class LayerCapture(LinearCapture):
    """LinearCapture that also records the trunk's plain Conv2d layers (`with capture: z = trunk(x)`)
    when `convs` is set. Only the "kernel" engine sets it: on CPUs the per-task backward, which gets
    a convolution's weight gradient from the same oneDNN call as its input gradient, measured faster
    (BENCHMARKS.md, balancing_speed)."""

    def __init__(self, trunk: nn.Module, shared: Sequence[Tensor], convs: bool = True):
        super().__init__(trunk, shared)
        if convs:
            ids = {id(p) for p in shared}
            self.layers += [m for m in trunk.modules()
                            if _unfoldable(m) and m.weight.requires_grad and id(m.weight) in ids]


def conv_task_grads(m: nn.Conv2d, x: Tensor, delta: Tensor) -> Tensor:
    """(T, C_out, C_in, kh, kw): each task's weight gradient from the layer input x (N, C_in, H, W) and
    the per-task output gradients delta (T, N, C_out, Ho, Wo), as one matrix product."""
    T, N, C = delta.shape[:3]
    U = F.unfold(x.detach(), m.kernel_size, m.dilation, m.padding, m.stride)   # (N, C_in*k*k, L)
    D = delta.reshape(T, N, C, -1).permute(0, 2, 1, 3).reshape(T * C, -1)       # (T*C_out, N*L)
    G = D @ U.transpose(1, 2).reshape(-1, U.shape[1]).to(D.dtype)               # (T*C_out, C_in*k*k)
    return G.reshape(T, *m.weight.shape)


class LayerKernelGramian(KernelGramian):
    """KernelGramian over the captured Linear AND Conv2d layers: the per-task output gradients of all
    of them come from the same per-task backward; convolutions then take conv_task_grads."""

    def __init__(self, feature_grads: Tensor, features: Tensor, shared: Sequence[Tensor], capture: LinearCapture,
                 engine: str = "auto", chunk: int | None = None, buffers: Buffers | None = None):
        super().__init__(feature_grads, features, shared, capture, engine, chunk, buffers)
        linear = [i for i, (m, _, _) in enumerate(self.layers) if type(m) in PLAIN_LINEAR]
        convs = [i for i in range(len(self.layers)) if i not in set(linear)]
        T = self.tasks
        # (layer, its per-task weight gradients, its output gradients as (T, N, C_out, L))
        self.convs = [(self.layers[i][0], conv_task_grads(self.layers[i][0], self.layers[i][1], self.deltas[i]),
                       self.deltas[i].reshape(T, *self.deltas[i].shape[1:3], -1)) for i in convs]
        self.layers = [self.layers[i] for i in linear]
        self.deltas = [self.deltas[i] for i in linear]

    def gramian(self) -> Tensor:
        K = super().gramian() if (self.layers or self.rest_stacks) else None
        for m, G, D in self.convs:
            flat = G.reshape(self.tasks, -1)
            part = flat @ flat.T
            if m.bias is not None and m.bias.requires_grad:
                b = D.sum((1, 3))                      # (T, C_out): the bias gradient sums every position
                part = part + b @ b.T
            part = part.double()
            K = part if K is None else K + part
        return K

    def write(self, weights: Tensor) -> None:
        super().write(weights)
        for m, G, D in self.convs:
            dw = torch.tensordot(weights.to(G.dtype), G, dims=1).to(m.weight.dtype)
            m.weight.grad = dw if m.weight.grad is None else m.weight.grad + dw
            if m.bias is not None and m.bias.requires_grad:
                db = torch.tensordot(weights.to(D.dtype), D.sum((1, 3)), dims=1).to(m.bias.dtype)
                m.bias.grad = db if m.bias.grad is None else m.bias.grad + db
