"""The Gramian of per-task gradients on nn.Linear layers without materialising them.

For a Linear layer with inputs X (N, d_in) and task t's gradient at its outputs D_t (N, d_out), task
t's weight gradient is D_t^T X, so

    <D_s^T X, D_t^T X> = <D_s, (X X^T) D_t>        (Frobenius inner products)

and the combined update sum_t w_t D_t^T X = (sum_t w_t D_t)^T X is ONE matrix product. Per layer the
cheaper of the two ways is taken: this kernel form, O(N^2 (d_in + T d_out)), or the explicit per-task
gradients, O(T N d_out d_in), which are reduced to the Gramian at once and never stored. Only the
output gradients D_t need backpropagating per task (no per-task weight-gradient products), and the
update needs no (T, P) pass. Parameters of other layers (convolutions, norms, ...) go through the
generic per-task path.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .jacobian import Buffers, gramian_of, per_task_grads, write_weighted

PLAIN_LINEAR = (nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear)


class LinearCapture:
    """Records the inputs and outputs of the trunk's plain nn.Linear layers during one forward
    (`with capture: z = trunk(x)`); the hooks exist only inside the `with`. A layer called more than
    once in a forward is left to the generic path."""

    def __init__(self, trunk: nn.Module, shared: Sequence[Tensor]):
        ids = {id(p) for p in shared}
        self.layers = [m for m in trunk.modules()
                       if type(m) in PLAIN_LINEAR and m.weight.requires_grad and id(m.weight) in ids]
        self.records: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}
        self._handles: list = []

    def __enter__(self) -> "LinearCapture":
        self.records = {m: [] for m in self.layers}
        if torch.is_grad_enabled():
            self._handles = [m.register_forward_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        self.records[module].append((inputs[0], output))

    def usable(self) -> list[tuple[nn.Module, Tensor, Tensor]]:
        """(layer, input, output) for layers seen exactly once whose output is in the graph."""
        return [(m, rec[0][0], rec[0][1]) for m, rec in self.records.items()
                if len(rec) == 1 and rec[0][1].requires_grad]


def _kernel_cheaper(n: int, d_in: int, d_out: int, tasks: int) -> bool:
    """Multiply-adds of each way, update included: the kernel form pays X X^T, (X X^T) D_t and one
    weighted product for the update; the explicit form pays T gradient products, their Gramian and
    a weighted sum of the stored gradients."""
    kernel = n * n * (d_in + tasks * d_out) + n * d_out * d_in
    explicit = tasks * n * d_out * d_in + (tasks * tasks + tasks) * d_out * d_in
    return kernel < explicit


class KernelGramian:
    """Per-task output gradients of the captured Linear layers plus per-task gradients of the other
    shared parameters; `.gramian()` and `.write(weights)` as the gradient methods need them."""

    def __init__(self, feature_grads: Tensor, features: Tensor, shared: Sequence[Tensor], capture: LinearCapture,
                 engine: str = "auto", chunk: int | None = None, buffers: Buffers | None = None):
        buffers = buffers or Buffers()
        self.layers = capture.usable()
        covered = set()
        for m, _, _ in self.layers:
            covered.add(id(m.weight))
            if m.bias is not None:
                covered.add(id(m.bias))
        self.rest = [p for p in shared if id(p) not in covered]
        outputs = [y for _, _, y in self.layers]
        stacks = per_task_grads(feature_grads, features, [*outputs, *self.rest], engine, chunk, buffers)
        self.deltas = stacks[:len(outputs)]
        self.rest_stacks = stacks[len(outputs):]
        self.tasks = feature_grads.shape[0]
        self.explicit: dict[int, Tensor] = {}   # layer index -> (T, d_out, d_in) per-task weight gradients

    def gramian(self) -> Tensor:
        T = self.tasks
        K = gramian_of(self.rest_stacks) if self.rest_stacks else None
        for i, ((m, x, _), delta) in enumerate(zip(self.layers, self.deltas)):
            X = x.detach().reshape(-1, x.shape[-1]).float()
            D = delta.reshape(T, -1, delta.shape[-1]).float()
            n, d_in, d_out = X.shape[0], X.shape[1], D.shape[-1]
            if _kernel_cheaper(n, d_in, d_out, T):
                MD = torch.matmul(X @ X.T, D)
                part = D.reshape(T, -1) @ MD.reshape(T, -1).T
            else:
                G = torch.matmul(D.transpose(1, 2), X)
                self.explicit[i] = G
                flat = G.reshape(T, -1)
                part = flat @ flat.T
            if m.bias is not None and m.bias.requires_grad:
                b = D.sum(1)
                part = part + b @ b.T
            part = part.double()
            K = part if K is None else K + part
        return K

    def write(self, weights: Tensor) -> None:
        """.grad += the combined update sum_t w_t g_t, layer by layer."""
        if self.rest_stacks:
            write_weighted(self.rest, self.rest_stacks, weights)
        for i, ((m, x, _), delta) in enumerate(zip(self.layers, self.deltas)):
            X = x.detach().reshape(-1, x.shape[-1])
            D = torch.tensordot(weights.to(delta.dtype), delta, dims=1).reshape(-1, delta.shape[-1])
            if i in self.explicit:
                dw = torch.tensordot(weights.to(self.explicit[i].dtype), self.explicit[i], dims=1).to(m.weight.dtype)
            else:
                dw = (D.T.to(X.dtype) @ X).to(m.weight.dtype)
            m.weight.grad = dw if m.weight.grad is None else m.weight.grad + dw
            if m.bias is not None and m.bias.requires_grad:
                db = D.sum(0).to(m.bias.dtype)
                m.bias.grad = db if m.bias.grad is None else m.bias.grad + db
