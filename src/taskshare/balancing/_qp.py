"""Small quadratic programs over task weights (T is tens at most), solved to high precision in float64."""
from __future__ import annotations

import torch
from torch import Tensor


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection onto {w >= 0, sum w = 1} (sort-based, exact)."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1
    idx = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    rho = int((u - css / idx > 0).nonzero().max())
    return (v - css[rho] / (rho + 1)).clamp_min(0)


def _lipschitz(K: Tensor) -> float:
    return max(float(torch.linalg.eigvalsh(K).max()), 1e-12)


def with_ridge(K: Tensor, scale: float = 1e-10) -> Tensor:
    """K plus a tiny relative ridge, so QPs stay well posed when gradients are (nearly) dependent."""
    eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
    return K + scale * K.trace().clamp_min(1e-30) * eye


def _accelerated_projected_gradient(K: Tensor, start: Tensor, project, iters: int, tol: float) -> Tensor:
    """Minimise v^T K v over a convex set given by its projection, from `start` (Nesterov momentum)."""
    step = 1.0 / (2 * _lipschitz(K))
    v = start.clone()
    y, t = v.clone(), 1.0
    for _ in range(iters):
        v_next = project(y - step * 2 * (K @ y))
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = v_next + ((t - 1) / t_next) * (v_next - v)
        if float((v_next - v).abs().max()) < tol:
            return v_next
        v, t = v_next, t_next
    return v


def min_norm_simplex(K: Tensor, iters: int = 2000, tol: float = 1e-12) -> Tensor:
    """argmin_{w in simplex} w^T K w, by accelerated projected gradient (exact closed form for T = 2)."""
    T = K.shape[0]
    if T == 1:
        return K.new_ones(1)
    if T == 2:
        a, b, c = K[0, 0], K[1, 1], K[0, 1]
        denom = a + b - 2 * c
        g = ((b - c) / denom).clamp(0, 1) if denom > 1e-20 else K.new_tensor(0.5)
        return torch.stack([g, 1 - g])
    return _accelerated_projected_gradient(K, K.new_full((T,), 1.0 / T), project_simplex, iters, tol)


def min_quadratic_lower_bounded(K: Tensor, lower: Tensor, iters: int = 2000, tol: float = 1e-12) -> Tensor:
    """argmin_{v >= lower} v^T K v (K positive semi-definite), by accelerated projected gradient."""
    return _accelerated_projected_gradient(K, lower, lambda v: torch.maximum(v, lower), iters, tol)


def solve_power_equation(K: Tensor, power: float, iters: int = 100, tol: float = 1e-11) -> Tensor:
    """The positive w with K w = w^(-power) (power > 0), as the minimiser of the convex
    f(w) = w^T K w / 2 - sum_i phi(w_i), phi'(w) = w^(-power), by damped Newton steps that keep w > 0.
    A tiny relative ridge keeps f bounded below when the gradients are linearly dependent."""
    K = with_ridge(K)

    def phi(w: Tensor) -> Tensor:
        return torch.log(w).sum() if abs(power - 1) < 1e-12 else (w ** (1 - power)).sum() / (1 - power)

    def f(w: Tensor) -> Tensor:
        return 0.5 * w @ K @ w - phi(w)

    w = K.diagonal().clamp_min(1e-30) ** (-1 / (1 + power))  # exact when K is diagonal
    for _ in range(iters):
        grad = K @ w - w ** (-power)
        if float(grad.abs().max()) < tol * max(1.0, float((w ** (-power)).abs().max())):
            break
        hess = K + torch.diag(power * w ** (-power - 1))
        step = torch.linalg.solve(hess, grad)
        t = 1.0
        shrink = step > 0
        if shrink.any():  # stay strictly inside w > 0
            t = min(1.0, 0.99 * float((w[shrink] / step[shrink]).min()))
        f0 = f(w)
        while t > 1e-12 and f(w - t * step) > f0 - 1e-4 * t * float(grad @ step):
            t *= 0.5
        w = w - t * step
    return w
