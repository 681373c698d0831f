"""Truncated Newton (Newton-CG) for the probe's logistic objective: the mean loss of x @ w.T + b plus
sum(penalty * w^2), multinomial (mask None) or one sigmoid per label (mask: 1 where the label is known).

Why Newton: at weak penalties the objective is badly conditioned and L-BFGS needs hundreds of
iterations per C, while Newton needs a handful, each one a few conjugate-gradient steps. The Hessian
is never formed: a Hessian-vector product is two matrix products in closed form (for the softmax,
p * (v - <p, v>) on the logits), so a step costs about as much as a few gradients. Warm starts along
the C path put every solve but the first inside Newton's region of fast convergence.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Below this the gradient of a mean loss in float64 is rounding: no solve is asked for more.
GRADIENT_FLOOR = 1e-13
# The objective gap a solve must also reach, relative to the objective: the gradient test alone stopped
# weak penalties short (wine at C = 1000: 1e-4 above the optimum), where the objective is flattest
GAP = 1e-8
# CG's forcing term: the residual asked of each inner solve is (gradient / starting gradient) ** FORCING
# of the gradient, at most half of it
FORCING = 0.5


def relative_tolerance(tol: float, start: float) -> float:
    """The gradient a solve must reach: `tol` times the largest entry where it starts. An absolute test
    fails along a warm-started path: at a weak penalty the previous C's optimum is already within 1e-5 in
    gradient (the penalty's share is 1 / (C n)), yet far from this C's optimum, since the curvature there
    is as small; measured against where it starts, every grid point gets solved."""
    return max(tol * float(start), GRADIENT_FLOOR)


def _loss_grad(x: Tensor, target: Tensor, mask: Tensor | None, w: Tensor, b: Tensor, penalty: Tensor):
    """Objective, its gradient (w, b) and the per-logit curvature weights (probabilities)."""
    n = len(x)
    logits = x @ w.T + b
    if mask is None:
        logp = torch.log_softmax(logits, 1)
        p = logp.exp()
        loss = -(logp * target).sum()
        residual = p - target
    else:
        p = torch.sigmoid(logits)
        loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask).sum()
        residual = (p - target) * mask
    value = loss / n + (penalty * w * w).sum()
    return value, residual.T @ x / n + 2 * penalty * w, residual.sum(0) / n, p


def _hvp(x: Tensor, mask: Tensor | None, p: Tensor, penalty: Tensor, vw: Tensor, vb: Tensor):
    """The Hessian at probabilities p times the direction (vw, vb)."""
    dl = x @ vw.T + vb
    if mask is None:
        # softmax Jacobian: diag(p) - p p^T, applied row by row
        out = p * (dl - (p * dl).sum(1, keepdim=True))
    else:
        out = p * (1 - p) * mask * dl
    n = len(x)
    return out.T @ x / n + 2 * penalty * vw, out.sum(0) / n


def _jacobi(x2: Tensor, mask: Tensor | None, p: Tensor, penalty: Tensor, dtype):
    """The inverse of the Hessian's diagonal, as a function of the residual (w part, b part). (A block per
    class, even exact, did no better: what slows CG is the coupling between classes, see _zero_sum.)"""
    n = len(x2)
    q = p * (1 - p) * (mask if mask is not None else 1)
    diag_w, diag_b = (q.T @ x2 / n + 2 * penalty).to(dtype), (q.sum(0) / n + 1e-12).to(dtype)
    return lambda rw, rb: (rw / diag_w, rb / diag_b)


def _zero_sum(precondition):
    """Keep CG's directions summing to zero over the classes. Adding one vector to every class's weights
    changes no softmax, so that direction's only curvature is the penalty's, tiny at weak penalties: a
    preconditioner that weighs classes differently would leak into it and stall CG. The optimum sums to
    zero anyway (the penalty is lowest there), and so does every gradient from a zero-sum start."""
    def apply(rw, rb):
        zw, zb = precondition(rw, rb)
        return zw - zw.mean(0), zb - zb.mean()
    return apply


def newton_cg(x: Tensor, target: Tensor, mask: Tensor | None, w0: Tensor, b0: Tensor, penalty: Tensor, tol: float,
              max_iter: int, reference: tuple[float, float] | None = None, max_cg: int = 200
              ) -> tuple[Tensor, Tensor, int]:
    """(w, b, Newton iterations): stops when every gradient entry is at most `tol` times the largest at
    the start, or in `reference` where given (see relative_tolerance; L-BFGS answers to the same test)."""
    w, b = w0.clone(), b0.clone()
    if mask is None:       # the zero-sum representative: the same softmax, a penalty no larger
        w, b = w - w.mean(0), b - b.mean()
    x2 = x * x
    # the inner CG runs in float32 (several times faster on CPU) while the gradient is large: it only has to
    # find a descent direction roughly; the gradient, the line search and the stopping test stay in x's
    # precision, so the optimum does
    low = x.float() if x.dtype == torch.float64 else x
    mask_low = mask.to(low.dtype) if mask is not None else None
    value, gw, gb, p = _loss_grad(x, target, mask, w, b, penalty)
    # `reference`: (largest entry, norm) of the gradient the tolerances are relative to, where not this start's
    g0max, g0 = reference or (float(_largest(gw, gb)), float(_norm(gw, gb)))
    gtol = relative_tolerance(tol, g0max)
    curvature = 2 * float(penalty.min())   # the penalty's, a floor under the objective's along w
    iterations = 0
    while iterations < max_iter and (_largest(gw, gb) > gtol or _gap_open(gw, gb, value, curvature)):
        iterations += 1
        # CG on H d = -g, to a residual that shrinks with the gradient relative to where this solve started:
        # superlinear steps, and the early steps of a warm start cheap. (Against the absolute gradient, the
        # weak penalties, whose gradients are small from the start, paid for a tight CG at every step.)
        gnorm = _norm(gw, gb)
        eta = min(0.5, (float(gnorm) / max(g0, 1e-300)) ** FORCING)
        precondition = _jacobi(x2, mask, p, penalty, low.dtype)
        if mask is None:
            precondition = _zero_sum(precondition)
        dw, db = _conjugate_gradients(low, mask_low, p, penalty, gw, gb, precondition, eta * gnorm, max_cg)
        dw, db, slope = _downhill(dw.to(w.dtype), db.to(w.dtype), gw, gb, precondition, low.dtype)
        step, new = _armijo(x, target, mask, penalty, w, b, dw, db, value, slope)
        if new is None:
            break              # no decrease left at float64's precision: as close as it gets
        w, b = w + step * dw, b + step * db
        before = _largest(gw, gb)
        value, gw, gb, p = new
        if mask is None:
            w, b, gw, value = _recentre(w, b, gw, value, penalty)
        if step == 1.0 and eta <= 0.01 and _largest(gw, gb) > 0.1 * before and low.dtype != x.dtype:
            # a full Newton step whose CG was asked for two digits yet gained less than one: float32's
            # rounding now limits the direction, so the remaining steps run CG in x's own precision. (While
            # CG is asked for less, a short gain is the loss's curvature changing along the step, which
            # float64 would not cure: switching then made every warm-started solve run in float64.)
            low, mask_low = x, mask
    return w, b, iterations


def _gap_open(gw: Tensor, gb: Tensor, value: Tensor, curvature: float) -> bool:
    """Whether the objective may still be more than GAP * value above its optimum: with curvature at
    least `curvature` the gap is at most |g|^2 / (2 curvature). At weak penalties a gradient 1e-5 of its
    start is not enough there; at strong ones this test passes first and costs nothing."""
    bound = max(2 * curvature * GAP * float(value), GRADIENT_FLOOR ** 2)
    return float(_norm(gw, gb)) ** 2 > bound


def _largest(gw: Tensor, gb: Tensor) -> Tensor:
    """The largest gradient entry, the stopping test's measure."""
    return max(gw.abs().max(), gb.abs().max())


def _norm(gw: Tensor, gb: Tensor) -> Tensor:
    return torch.sqrt((gw * gw).sum() + (gb * gb).sum())


def _conjugate_gradients(low: Tensor, mask_low: Tensor | None, p: Tensor, penalty: Tensor, gw: Tensor, gb: Tensor,
                         precondition, stop: Tensor, max_cg: int) -> tuple[Tensor, Tensor]:
    """Preconditioned CG on H d = -g in `low`'s precision, until the residual's norm is at most `stop`."""
    rw, rb = -gw.to(low.dtype), -gb.to(low.dtype)
    plow, pen_low = p.to(low.dtype), penalty.to(low.dtype)
    dw, db = torch.zeros_like(rw), torch.zeros_like(rb)
    zw, zb = precondition(rw, rb)
    sw, sb = zw.clone(), zb.clone()
    rz = (rw * zw).sum() + (rb * zb).sum()
    for _ in range(max_cg):
        hw, hb = _hvp(low, mask_low, plow, pen_low, sw, sb)
        curvature = (sw * hw).sum() + (sb * hb).sum()
        if curvature <= 0:
            break          # only the bias's softmax-invariant direction has none; it changes nothing
        alpha = rz / curvature
        dw, db = dw + alpha * sw, db + alpha * sb
        rw, rb = rw - alpha * hw, rb - alpha * hb
        if _norm(rw, rb) <= stop:
            break
        zw, zb = precondition(rw, rb)
        rz_new = (rw * zw).sum() + (rb * zb).sum()
        sw, sb = zw + (rz_new / rz) * sw, zb + (rz_new / rz) * sb
        rz = rz_new
    return dw, db


def _downhill(dw: Tensor, db: Tensor, gw: Tensor, gb: Tensor, precondition, low_dtype):
    """(dw, db, slope): CG's direction where it descends; where rounding spoilt it, the preconditioned
    gradient, always downhill."""
    slope = (gw * dw).sum() + (gb * db).sum()
    if not torch.isfinite(slope) or slope >= 0:
        dw, db = (v.to(dw.dtype) for v in precondition(-gw.to(low_dtype), -gb.to(low_dtype)))
        slope = (gw * dw).sum() + (gb * db).sum()
    return dw, db, slope


def _armijo(x: Tensor, target: Tensor, mask: Tensor | None, penalty: Tensor, w: Tensor, b: Tensor, dw: Tensor,
            db: Tensor, value: Tensor, slope: Tensor):
    """(step, _loss_grad at the step) by Armijo backtracking: the full step is taken near the optimum,
    shorter ones guard the start; (step, None) where 30 halvings found no decrease."""
    step = 1.0
    for _ in range(30):
        new = _loss_grad(x, target, mask, w + step * dw, b + step * db, penalty)
        if new[0] <= value + 1e-4 * step * slope:
            return step, new
        step *= 0.5
    return step, None


def _recentre(w: Tensor, b: Tensor, gw: Tensor, value: Tensor, penalty: Tensor):
    """float32's rounding leaves the step a little off zero-sum (see _zero_sum), and the penalty's gradient
    along that direction is one CG never reduces: remove it exactly. The softmax, and so the loss and its
    zero-sum gradient, stay; only the penalty's part changes."""
    drift = w.mean(0)
    w, b, gw = w - drift, b - b.mean(), gw - gw.mean(0)
    return w, b, gw, value - len(w) * (penalty * drift * drift).sum()
