from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import TaskshareError
from ._qp import ScaledGramian, project_simplex, with_ridge
from .base import BALANCERS, Balancer, balancer_dataclass, check_present


def cagrad_inner(K: Tensor, radius: float, iters: int = 200) -> Tensor:
    """argmin_{w in simplex} f(w) = w^T K b + radius * sqrt(w^T K w), b = 1/T, to float64 precision.

    sqrt(x) = min_{mu > 0} x / (2 mu) + mu / 2, so min_w f = min_mu phi(mu) with
    phi(mu) = min_w w^T K b + radius (w^T K w / (2 mu) + mu / 2): for a fixed mu a simplex QP, solved
    exactly by the active-set method; phi is convex and its slope radius / 2 (1 - |g_w(mu)|^2 / mu^2)
    changes sign where mu = |g_w(mu)|, found by bisection on log mu (|g_w| lies within the gradients'
    norms). At that mu the QP's w minimises f."""
    T = K.shape[0]
    scaled = ScaledGramian(K)
    A = with_ridge(K.detach().double().cpu()).numpy()   # |g_w| > 0 even where the hull holds the origin
    Kb = A.mean(1)
    diag = np.clip(np.diag(A), 0, None)
    hi = float(np.sqrt(diag.max()))
    if T == 1 or hi == 0:
        return K.new_full((T,), 1.0 / T)
    lo = hi * 1e-12
    lower = np.zeros(T)

    def inner(mu: float) -> np.ndarray:
        w = scaled.solve(lower, True, linear=Kb, curvature=radius / mu)
        if w is None:   # did not settle: the projected-gradient fallback on the same QP
            Kt = torch.from_numpy((radius / mu) * A)
            w = _projected_qp(Kt, torch.from_numpy(Kb)).numpy()
        return w

    def gap(log_mu: float) -> tuple[float, np.ndarray]:   # log |g_w(mu)| - log mu: increasing to decreasing
        w = inner(float(np.exp(log_mu)))
        return float(np.log(max(np.sqrt(max(w @ A @ w, 0.0)), 1e-300))) - log_mu, w

    a, b = float(np.log(lo)), float(np.log(hi))
    fa, w_lo = gap(a)
    if fa <= 0:              # the hull holds (nearly) zero: the tiniest mu is the answer
        return torch.from_numpy(w_lo).to(K)
    return torch.from_numpy(_false_position(gap, a, b, fa, iters)).to(K)


def _false_position(gap: Callable[[float], tuple[float, np.ndarray]], a: float, b: float, fa: float,
                    iters: int) -> np.ndarray:
    """The w at the root of gap(log mu) in [a, b] (gap(a) = fa > 0 >= gap(b)) by Illinois false
    position: superlinear once the QP's active set stops changing."""
    fb, best = gap(b)
    side = 0
    for _ in range(iters):
        c = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        if not a < c < b:
            c = 0.5 * (a + b)
        fc, w = gap(c)
        if fc > 0:
            a, fa = c, fc
            if side == -1:
                fb *= 0.5
            side = -1
        else:
            b, fb, best = c, fc, w
            if side == 1:
                fa *= 0.5
            side = 1
        if b - a < 1e-13 or abs(fc) < 1e-14:
            best = w
            break
    return best


def _projected_qp(A: Tensor, q: Tensor, iters: int = 20000) -> Tensor:
    """argmin_{w in simplex} w^T A w / 2 + q . w by projected gradient (a fallback, rarely used)."""
    step = 1.0 / max(float(torch.linalg.eigvalsh(A).max()), 1e-30)
    w = A.new_full((A.shape[0],), 1.0 / A.shape[0])
    for _ in range(iters):
        w_next = project_simplex(w - step * (A @ w + q))
        if float((w_next - w).abs().max()) < 1e-15:
            return w_next
        w = w_next
    return w


# A float32 dot product of P terms is exact to about sqrt(P) float32 steps in practice (blocked sums);
# 64 of them bounds the error of w^T K w on the Gramians seen here (P up to 1e6) with room to spare.
ROUNDING_FACTOR = 64.0


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
        return self.solve_weights(gramian, None, torch.finfo(torch.float64).eps)

    def solve_weights(self, gramian: Tensor, present: Tensor | None, rounding: float) -> Tensor:
        """The weights b + (radius / |g_w|) w, with |g_w|^2 = w^T K w read from the Gramian. Where the hull
        nearly holds the origin, w^T K w falls below the error the Gramian's products carry (float32
        products of collinear gradients gave |g_w| ~ 1e-15 for a true 1e-7, and an update 1e5 times too
        long): |g_w|^2 is then taken at that error's bound instead, which shortens the step and keeps it
        within the ball |d - g0| <= c |g0|. Above the bound the answer is the exact one."""
        T = gramian.shape[0]
        b = gramian.new_full((T,), 1.0 / T)
        radius = self.c * max(float(b @ gramian @ b), 0.0) ** 0.5
        if radius == 0:
            return b
        w = cagrad_inner(gramian, radius)
        norms = gramian.diagonal().clamp_min(0).sqrt()
        floor = ROUNDING_FACTOR * rounding * float(w @ norms) ** 2   # error bound of w^T K w
        gw_norm = max(float(w @ gramian @ w), floor) ** 0.5
        return self._combined(b, w, radius, gw_norm)

    def direction(self, grads: Tensor, present: Tensor | None = None) -> Tensor:
        """With the gradients at hand, |g_w| is read from g_w itself, in float64 (the update is then
        within the ball up to the gradients' own rounding, whatever the Gramian's)."""
        if grads.dim() != 2 or len(grads) < 2:
            return super().direction(grads, present)     # its checks, and the answers for 0 or 1 task
        if present is not None and int(check_present(present, None, self.name).sum()) != len(grads):
            return super().direction(grads, present)     # its message for a mask that does not fit
        G = grads.detach().double()
        K = G @ G.T
        b = K.new_full((len(G),), 1.0 / len(G))
        g0 = b @ G
        radius = self.c * float(g0.norm())
        if radius == 0:
            return g0.to(grads.dtype)
        w = cagrad_inner(K, radius)
        gw_norm = float((w @ G).norm())
        return (self._combined(b, w, radius, gw_norm) @ G).to(grads.dtype)

    def _combined(self, b: Tensor, w: Tensor, radius: float, gw_norm: float) -> Tensor:
        """b + (radius / |g_w|) w, divided by 1 + c^2 when `rescale`; g_w = 0 (the hull holds the origin
        exactly): every direction is as good, and the mean gradient is taken."""
        out = b + (radius / gw_norm) * w if gw_norm > 0 else b.clone()
        return out / (1 + self.c ** 2) if self.rescale else out
