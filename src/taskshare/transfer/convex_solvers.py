"""The two exact solvers behind the convex probe, on centred and scaled features.

Both use scikit-learn's scaling of the penalty, so an answer can be checked against it: logistic
minimises C * sum(loss) + ||W||^2 / 2 per label (multinomial: over all classes at once), ridge
minimises sum(squared error) + alpha * ||w||^2; neither penalises the bias. The logistic objective is
divided by C * n (the mean loss plus ||W||^2 / (2 C n), n the rows), so the gradient tolerance means
the same at every C; per-label penalties still weigh against each label's own summed loss, as in one
fit per label.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import TaskshareError
from ..tasks import MISSING, Task
from .convex_newton import _loss_grad, newton_cg, relative_tolerance


def logistic_path(task: Task, z: Tensor, y: Tensor, grid: list[float], tol: float, max_iter: int,
                  method: str = "newton"):
    """(W, b, iterations) at every C of `grid` in turn, each solve warm-started from the last, by
    truncated Newton (convex_newton.py; the default) or L-BFGS (`method="lbfgs"`).

    The optimum's W lies in the row space of z (the loss cannot see the rest, the penalty pulls it to
    zero), so the solve runs in the basis of z's singular vectors, where the curvature of every
    direction is known up to the loss's: s_j^2 q / n + 1 / (C n) with q <= 1/4. Dividing each
    coordinate by the square root of that bound makes the problem nearly isotropic, which is what
    lets L-BFGS finish in tens of iterations on features whose correlations would cost it hundreds
    (and keeps Newton's conjugate-gradient inner solves short). The optimum is the same problem's; only
    the coordinates differ.
    """
    if method not in SOLVERS:
        raise TaskshareError(f"convex probe: method must be one of {sorted(SOLVERS)}, got {method!r}")
    solve = SOLVERS[method]
    if task.kind == "multiclass":
        known = y != MISSING
        z, target, mask = z[known], F.one_hot(y[known], task.out_dim).to(z.dtype), None
    else:
        mask = task.known(y).to(z.dtype)   # unknown entries weigh nothing
        target = torch.where(mask > 0, y, torch.zeros_like(y)).to(z.dtype)
    n = len(z)
    basis, s, vh = _spectral_basis(z)                         # z = basis @ vh, columns orthogonal
    theta = torch.zeros(task.out_dim, len(s), dtype=z.dtype, device=z.device)
    b = torch.zeros(task.out_dim, dtype=z.dtype, device=z.device)
    if len(s) == 0:   # constant features (e.g. a dead trunk): the optimum is the intercept alone, at every C
        for _ in grid:
            yield theta @ vh, _intercept_only(target, mask), 0
        return
    previous, last_c = None, None   # the optimum before the last one, with its log C: the path's direction
    for c in grid:
        scale = (s * s / (4 * n) + 1.0 / (c * n)).sqrt()
        scale = scale / scale.min()   # the flattest direction keeps its units, and the gradient test its meaning there
        x, penalty = basis / scale, 1.0 / (2.0 * c * n) / scale ** 2
        start_theta, start_b, reference = _path_start(x, target, mask, penalty, scale, (theta, b, last_c), previous,
                                                      c)
        phi, new_b, iters = solve(x, target, mask, start_theta * scale, start_b, penalty, tol, max_iter, reference)
        previous = (theta, b, last_c) if last_c is not None else None   # the zero start is no optimum
        theta, b, last_c = phi / scale, new_b, c
        yield theta @ vh, b, iters


def _path_start(x: Tensor, target: Tensor, mask: Tensor | None, penalty: Tensor, scale: Tensor, last, previous,
                c: float) -> tuple[Tensor, Tensor, tuple[float, float] | None]:
    """Where the solve at C starts: the last optimum, or the line through the last two optima extended to
    log C, whichever has the lower objective, and the gradient at the last optimum. Along a log grid the weights grow smoothly with log C, so the
    extension usually starts Newton nearer this optimum (fewer of its slow first steps); the comparison
    keeps a bend in the path from costing anything."""
    theta, b, last_c = last
    if previous is None:
        return theta, b, None
    theta0, b0, c0 = previous
    ratio = math.log(c / last_c) / math.log(last_c / c0)
    guess_theta, guess_b = theta + ratio * (theta - theta0), b + ratio * (b - b0)
    here, gw, gb, _ = _loss_grad(x, target, mask, theta * scale, b, penalty)
    there = _loss_grad(x, target, mask, guess_theta * scale, guess_b, penalty)[0]
    # the tolerances stay relative to the gradient at the last optimum, as without the extension: measured
    # from a better start they would only ask for more
    reference = (float(max(gw.abs().max(), gb.abs().max())), float(torch.sqrt((gw * gw).sum() + (gb * gb).sum())))
    return (guess_theta, guess_b, reference) if there < here else (theta, b, reference)


def _intercept_only(target: Tensor, mask: Tensor | None) -> Tensor:
    """The loss's minimiser over the intercept alone: log class frequencies (softmax), or each label's
    log-odds over its known entries (clamped where a label has one class only)."""
    if mask is None:
        logp = (target.sum(0) / len(target)).clamp_min(1e-12).log()
        return logp - logp.mean()
    p = ((target * mask).sum(0) / mask.sum(0).clamp_min(1)).clamp(1e-6, 1 - 1e-6)
    return (p / (1 - p)).log()


def _spectral_basis(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(basis, s, vh) with z = basis @ vh, basis's columns orthogonal with norms s, vh's rows orthonormal:
    the thin SVD's answer from the eigenvectors of the smaller Gram matrix, about half the SVD's time on
    probe-sized features. Directions z does not span (eigenvalues below 1e-10 of the largest) are left
    out: the loss cannot see them, so the optimum has nothing there."""
    n, d = z.shape
    evals, vecs = torch.linalg.eigh(z.T @ z if n >= d else z @ z.T)
    keep = evals > 1e-10 * evals.max().clamp_min(1e-300)
    s, vecs = evals[keep].sqrt(), vecs[:, keep]
    if n >= d:
        return z @ vecs, s, vecs.T
    return vecs * s, s, (vecs.T @ z) / s[:, None]


def _lbfgs(x: Tensor, target: Tensor, mask: Tensor | None, w0: Tensor, b0: Tensor, penalty: Tensor, tol: float,
           max_iter: int, reference: tuple[float, float] | None = None) -> tuple[Tensor, Tensor, int]:
    """min over (w, b) of the mean loss of x @ w.T + b plus sum(penalty * w^2) (penalty per column):
    full-batch L-BFGS with a strong-Wolfe line search."""
    w = w0.detach().clone().requires_grad_(True)
    b = b0.detach().clone().requires_grad_(True)
    n = len(x)
    # tolerance_change far below float64's useful precision on a mean loss: the gradient test decides,
    # relative to the gradient where this solve starts (see relative_tolerance)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=1.0,
                            tolerance_change=1e-14, history_size=10, line_search_fn="strong_wolfe")

    @torch.no_grad()
    def closure() -> Tensor:
        # the gradient by hand: on problems of probe size autograd's bookkeeping costs more than the maths
        logits = x @ w.T + b
        if mask is None:
            logp = torch.log_softmax(logits, 1)
            loss = -(logp * target).sum()
            residual = logp.exp() - target
        else:
            loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask).sum()
            residual = (torch.sigmoid(logits) - target) * mask
        w.grad = residual.T @ x / n + 2 * penalty * w
        b.grad = residual.sum(0) / n
        return loss / n + (penalty * w * w).sum()

    closure()
    start = reference[0] if reference is not None else max(w.grad.abs().max(), b.grad.abs().max())
    opt.param_groups[0]["tolerance_grad"] = relative_tolerance(tol, start)
    opt.step(closure)
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))  # LBFGS keeps its count on the first param
    return w.detach(), b.detach(), iterations


SOLVERS = {"newton": newton_cg, "lbfgs": _lbfgs}


def ridge_path(z: Tensor, y: Tensor, known: Tensor, alphas: list[float]) -> list[tuple[Tensor, Tensor]]:
    """Ridge with an unpenalised intercept, per output column on its known rows, for every alpha from
    one thin SVD per distinct set of known rows."""
    outputs = y.shape[1]
    ws = torch.zeros(len(alphas), outputs, z.shape[1], dtype=z.dtype, device=z.device)
    bs = torch.zeros(len(alphas), outputs, dtype=z.dtype, device=z.device)
    decompositions: dict[bytes, tuple] = {}
    for j in range(outputs):
        rows = known[:, j]
        if not rows.any():
            continue                  # no known value: the column predicts 0
        key = rows.cpu().numpy().tobytes()
        if key not in decompositions:
            zj = z[rows]
            center = zj.mean(0)
            u, s, vh = torch.linalg.svd(zj - center, full_matrices=False)
            decompositions[key] = (center, u, s, vh)
        center, u, s, vh = decompositions[key]
        yj = y[rows, j]
        mean = yj.mean()
        projected = u.T @ (yj - mean)
        for i, alpha in enumerate(alphas):
            ws[i, j] = vh.T @ (s / (s * s + alpha) * projected)
            bs[i, j] = mean - center @ ws[i, j]
    return [(ws[i], bs[i]) for i in range(len(alphas))]
