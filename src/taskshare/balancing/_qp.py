"""Small quadratic programs over task weights (T is tens at most), solved to high precision in float64."""
from __future__ import annotations

import numpy as np
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


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def active_set_qp(K: Tensor, lower: Tensor, simplex: bool, max_iter: int | None = None) -> Tensor | None:
    """argmin 1/2 v^T K v subject to v >= lower (and sum v = 1 when `simplex`), exactly, by a primal
    active-set method on the CPU in float64 (T is small: a few (T x T) solves). None if it did not
    settle within max_iter steps (the caller then falls back to the projected-gradient solver)."""
    A = with_ridge(K.detach().double().cpu()).numpy()
    x = active_set(A, lower.detach().double().cpu().numpy(), simplex, max_iter)
    return None if x is None else torch.from_numpy(x).to(K)


def active_set(A: np.ndarray, lo: np.ndarray, simplex: bool, max_iter: int | None = None,
               linear: np.ndarray | None = None) -> np.ndarray | None:
    """The active-set iterations of `active_set_qp` on a NumPy matrix (callers solving several QPs
    over one Gramian convert it once); `linear` adds q . v to the objective."""
    T = len(lo)
    q = np.zeros(T) if linear is None else linear
    x = np.full(T, 1.0 / T) if simplex else lo.copy()
    fixed = np.zeros(T, bool) if simplex else np.ones(T, bool)
    tol_mult = -1e-12 * max(1.0, float(np.abs(A).max()))
    for _ in range(max_iter or 10 * T + 10):
        free = ~fixed
        target = x.copy()
        lam = 0.0
        if free.any():
            a_ff = A[free][:, free]
            rhs = -(A[free][:, fixed] @ lo[fixed]) - q[free]
            if simplex:
                nf = len(a_ff)
                kkt = np.zeros((nf + 1, nf + 1))
                kkt[:nf, :nf], kkt[:nf, nf], kkt[nf, :nf] = a_ff, -1.0, 1.0
                sol = _solve(kkt, np.append(rhs, 1.0 - lo[fixed].sum()))
                target[free], lam = sol[:nf], sol[nf]
            else:
                target[free] = _solve(a_ff, rhs)
        target[fixed] = lo[fixed]
        step = target - x
        if np.abs(step).max() <= 1e-13 * max(1.0, float(np.abs(x).max())):
            if not fixed.any():
                return x
            mult = (A @ x + q - lam)[fixed]
            if mult.min() >= tol_mult:
                return x
            fixed[np.flatnonzero(fixed)[int(mult.argmin())]] = False
            continue
        blocking = free & (step < 0)
        alpha, hit = 1.0, -1
        if blocking.any():
            ratios = (lo[blocking] - x[blocking]) / step[blocking]
            j = int(ratios.argmin())
            if ratios[j] < 1.0:
                alpha, hit = max(float(ratios[j]), 0.0), int(np.flatnonzero(blocking)[j])
        x = x + alpha * step
        if hit >= 0:
            x[hit] = lo[hit]
            fixed[hit] = True
    return None


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
    exact = active_set_qp(K, K.new_zeros(T), simplex=True)
    if exact is not None:
        return exact
    return _accelerated_projected_gradient(K, K.new_full((T,), 1.0 / T), project_simplex, iters, tol)


def min_quadratic_lower_bounded(K: Tensor, lower: Tensor, iters: int = 2000, tol: float = 1e-12) -> Tensor:
    """argmin_{v >= lower} v^T K v (K positive semi-definite): exact active set, projected gradient as
    the fallback."""
    exact = active_set_qp(K, lower, simplex=False)
    if exact is not None:
        return exact
    return _accelerated_projected_gradient(K, lower, lambda v: torch.maximum(v, lower), iters, tol)


def solve_power_equation(K: Tensor, power: float, iters: int = 30, tol: float = 1e-11) -> Tensor:
    """The positive w with K w = w^(-power) (power > 0), as the minimiser of the convex
    f(w) = w^T K w / 2 - sum_i phi(w_i), phi'(w) = w^(-power), by damped Newton steps that keep w > 0
    (closed form for two tasks and power 1: a w1^2 = b w2^2, so w1 = (a + c sqrt(a / b))^(-1/2)).
    A tiny relative ridge keeps f bounded below when the gradients are linearly dependent; near that
    case (opposite gradients) the weights grow like 1/sqrt(ridge) and `iters` Newton steps bound the
    time spent approaching them."""
    K = with_ridge(K)
    if K.shape[0] == 2 and abs(power - 1) < 1e-12:
        a, b, c = K[0, 0], K[1, 1], K[0, 1]
        w1 = (a + c * (a / b).sqrt()).clamp_min(1e-300).rsqrt()
        return torch.stack([w1, w1 * (a / b).sqrt()])

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
        while t > 1e-9 and f(w - t * step) > f0 - 1e-4 * t * float(grad @ step):
            t *= 0.5
        w = w - t * step
    return w
