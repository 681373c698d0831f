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


def task_units(K: Tensor) -> Tensor:
    """Each task's squared gradient norm (diag K), the unit its weight is measured in; a zero gradient
    (it decouples from the others) borrows the mean of the live ones, an all-zero K a tiny constant."""
    d = K.diagonal().clone()
    live = d > 0
    fill = d[live].mean() if bool(live.any()) else d.new_tensor(1e-30)
    return torch.where(live, d, fill)


def with_ridge(K: Tensor, scale: float = 1e-10) -> Tensor:
    """K plus a tiny ridge, so QPs stay well posed when gradients are (nearly) dependent. The ridge is
    relative to each task's own squared norm (scale * T * |g_i|^2), not to trace(K): when the norms span
    1e4 or more a trace-relative ridge is up to all of the smallest task's squared norm and the answers
    drift (an UPGrad update that conflicts with that task). Equal norms give the trace-relative ridge."""
    return K + scale * K.shape[0] * torch.diag(task_units(K))


class ScaledGramian:
    """The ridged Gramian in the coordinates u_i = |g_i| v_i, where every task gradient has unit length,
    for the active-set QPs: their tolerances are then relative to each task's own scale, so the answers
    are exact on positive-definite Gramians whatever the gradients' norms (a tiny or a 1e8-wide span).
    Convert once, solve several QPs over it."""

    def __init__(self, K: Tensor):
        K = K.detach().double().cpu()
        self.norms = task_units(K).sqrt().numpy()
        self.matrix = with_ridge(K).numpy() / np.outer(self.norms, self.norms)

    def solve(self, lower: np.ndarray, simplex: bool, linear: np.ndarray | None = None, curvature: float = 1.0,
              max_iter: int | None = None) -> np.ndarray | None:
        """argmin curvature/2 v^T K v + linear . v subject to v >= lower (and sum v = 1 when `simplex`),
        None if the active set did not settle. One more constant m keeps the unknowns of order one (the
        solver's step and multiplier tolerances are relative to 1): v = u / (m |g|), and the objective
        times m^2 is curvature/2 u^T A u + (m linear / |g|) . u."""
        n = self.norms
        if simplex:
            m = 1.0 / n.min()
        else:
            top = float((n * np.abs(lower)).max())
            m = 1.0 / (top if top > 0 else n.max())
        q = None if linear is None else m * linear / n
        u = active_set(curvature * self.matrix, m * n * lower, simplex, max_iter, linear=q,
                       coef=1.0 / (m * n) if simplex else None)
        return None if u is None else u / (m * n)


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
    active-set method on the CPU in float64 (T is small: a few (T x T) solves), in the scaled
    coordinates of `ScaledGramian`. None if it did not settle within max_iter steps (the caller then
    falls back to the projected-gradient solver)."""
    x = ScaledGramian(K).solve(lower.detach().double().cpu().numpy(), simplex, max_iter=max_iter)
    return None if x is None else torch.from_numpy(x).to(K)


def active_set(A: np.ndarray, lo: np.ndarray, simplex: bool, max_iter: int | None = None,
               linear: np.ndarray | None = None, coef: np.ndarray | None = None) -> np.ndarray | None:
    """The active-set iterations of `active_set_qp` on a NumPy matrix: argmin 1/2 v^T A v + linear . v
    subject to v >= lo and, when `simplex`, coef . v = 1 (coef: ones unless given; positive)."""
    T = len(lo)
    q = np.zeros(T) if linear is None else linear
    c = np.ones(T) if coef is None else coef
    x = np.full(T, 1.0 / c.sum()) if simplex else lo.copy()
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
                kkt[:nf, :nf], kkt[:nf, nf], kkt[nf, :nf] = a_ff, -c[free], c[free]
                sol = _solve(kkt, np.append(rhs, 1.0 - c[fixed] @ lo[fixed]))
                target[free], lam = sol[:nf], sol[nf]
            else:
                target[free] = _solve(a_ff, rhs)
        target[fixed] = lo[fixed]
        step = target - x
        if np.abs(step).max() <= 1e-13 * max(1.0, float(np.abs(x).max())):
            if not fixed.any():
                return x
            mult = (A @ x + q - lam * c)[fixed]
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
    return _accelerated_projected_gradient(with_ridge(K), lower, lambda v: torch.maximum(v, lower), iters, tol)


def solve_power_equation(K: Tensor, power: float, iters: int = 200, tol: float = 1e-11) -> Tensor:
    """The positive w with K w = w^(-power) (power > 0), as the minimiser of the convex
    f(w) = w^T K w / 2 - sum_i phi(w_i), phi'(w) = w^(-power), by damped Newton steps that keep w > 0,
    until every task's residual is within `tol` of its w^(-power) (`iters` is a cap, not a budget:
    ordinary inputs stop after a few steps; gradient norms spanning 1e4 with alpha = 5 took some 40),
    closed form for two tasks and power 1 (a w1^2 = b w2^2, so w1 = (a + c sqrt(a / b))^(-1/2)).
    A tiny ridge relative to each task's squared norm keeps f bounded below when the gradients are
    linearly dependent; near that case (opposite gradients) the weights grow like 1/sqrt(ridge). Where
    K itself is positive definite Newton steps on K from the ridged answer remove the ridge's bias (kept
    only if they reach every task's residual to 1e-9 of its w^(-power); on a singular K they cannot:
    w K w stays 0 along the null direction)."""
    ridged = with_ridge(K)
    if K.shape[0] == 2 and abs(power - 1) < 1e-12:
        a, b, c = ridged[0, 0], ridged[1, 1], ridged[0, 1]
        w1 = (a + c * (a / b).sqrt()).clamp_min(1e-300).rsqrt()
        w = torch.stack([w1, w1 * (a / b).sqrt()])
    else:
        w = _newton_power(ridged, ridged.diagonal().clamp_min(1e-30) ** (-1 / (1 + power)), power, iters, tol)
    exact = _newton_power(K, w, power, max(iters // 4, 5), tol)
    residual = (K @ exact - exact ** (-power)).abs() / exact ** (-power)
    return exact if bool(torch.isfinite(exact).all()) and float(residual.max()) <= 1e-9 else w


def _newton_power(K: Tensor, w: Tensor, power: float, iters: int, tol: float) -> Tensor:
    """Damped Newton steps on f from w (see solve_power_equation), at most `iters`. They do not depend
    on the tasks' scales, and neither does the stopping test: every task's residual is relative to its
    w^(-power). The line search asks for a decrease of f while float64 can see one; near the answer
    the decrease falls below f's rounding (f ~ 1e2, a decrease of 1e-15: the Armijo test then fails at
    random and the steps stalled with residuals of 1e-2), so from there it asks for a smaller largest
    relative residual instead, which Newton's full steps give quadratically."""

    def phi(w: Tensor) -> Tensor:
        return torch.log(w).sum() if abs(power - 1) < 1e-12 else (w ** (1 - power)).sum() / (1 - power)

    def f(w: Tensor) -> Tensor:
        return 0.5 * w @ K @ w - phi(w)

    def residual(w: Tensor) -> float:
        return float(((K @ w - w ** (-power)).abs() / w ** (-power)).max())

    for _ in range(iters):
        grad = K @ w - w ** (-power)
        if bool((grad.abs() <= tol * w ** (-power)).all()):
            break
        hess = K + torch.diag(power * w ** (-power - 1))
        try:
            step = torch.linalg.solve(hess, grad)
        except RuntimeError:   # singular K (dependent gradients), w grown past the diagonal's reach
            break
        if not bool(torch.isfinite(step).all()):
            break
        t = 1.0
        shrink = step > 0
        if shrink.any():  # stay strictly inside w > 0
            t = min(1.0, 0.99 * float((w[shrink] / step[shrink]).min()))
        f0 = f(w)
        decrease = float(grad @ step)
        if decrease > 1e-13 * (abs(float(f0)) + 1e-300):
            while t > 1e-9 and f(w - t * step) > f0 - 1e-4 * t * decrease:
                t *= 0.5
        else:             # below f's resolution: judge the step by the residual it leaves
            r0 = residual(w)
            while t > 1e-9 and not residual(w - t * step) < r0:
                t *= 0.5
        if t <= 1e-9:   # no decrease left at float64's precision
            break
        w = w - t * step
    return w
