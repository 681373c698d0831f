from __future__ import annotations

import torch
from torch import Tensor

from ..errors import TaskshareError
from ._qp import project_simplex
from .base import BALANCERS, Balancer, balancer_dataclass


def cagrad_inner(K: Tensor, radius: float, iters: int = 3000) -> Tensor:
    """argmin_{w in simplex} w^T K b + radius * sqrt(w^T K w), b = 1/T: projected gradient descent
    with a backtracking-free step 1/(2 lambda_max(K)) scaled for the square-root term."""
    T = K.shape[0]
    b = K.new_full((T,), 1.0 / T)
    w = b.clone()
    lam = max(float(torch.linalg.eigvalsh(K).max()), 1e-30)
    step = 1.0 / (lam * (1 + radius / max(float((b @ K @ b).clamp_min(1e-30).sqrt()), 1e-12)))
    Kb = K @ b
    for _ in range(iters):
        Kw = K @ w
        norm = (w @ Kw).clamp_min(1e-30).sqrt()
        grad = Kb + radius * Kw / norm
        w_next = project_simplex(w - step * grad)
        if float((w_next - w).abs().max()) < 1e-13:
            return w_next
        w = w_next
    return w


@BALANCERS.register("cagrad")
@balancer_dataclass
class CAGrad(Balancer):
    """CAGrad (Liu et al., NeurIPS 2021): stay within a ball of radius c * ||g0|| around the mean
    gradient g0 while maximising the worst task's improvement. The dual gives w = argmin_{w in simplex}
    g_w . g0 + c ||g0|| ||g_w|| and the update d = g0 + (c ||g0|| / ||g_w||) g_w, divided by 1 + c^2
    when `rescale` (the reference implementation's default). c = 0 is the mean gradient."""

    name = "cagrad"
    needs = "gramian"
    c: float = 0.5
    rescale: bool = True

    def setup(self) -> None:
        if self.c < 0:
            raise TaskshareError(f"cagrad: c must be >= 0, got {self.c!r}")

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        b = gramian.new_full((T,), 1.0 / T)
        g0_norm = float((b @ gramian @ b).clamp_min(0).sqrt())
        radius = self.c * g0_norm
        if radius == 0:
            return b
        w = cagrad_inner(gramian, radius)
        gw_norm = float((w @ gramian @ w).clamp_min(1e-30).sqrt())
        out = b + (radius / gw_norm) * w
        return out / (1 + self.c ** 2) if self.rescale else out
