"""The two exact solvers behind the convex probe, on standardised features.

Both use scikit-learn's scaling of the penalty, so an answer can be checked against it: logistic
minimises C * sum(loss) + ||W||^2 / 2 per label (multinomial: over all classes at once), ridge
minimises sum(squared error) + alpha * ||w||^2; neither penalises the bias.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..tasks import MISSING, Task


def logistic_lbfgs(task: Task, z: Tensor, y: Tensor, c: float, w0: Tensor, b0: Tensor, tol: float,
                   max_iter: int) -> tuple[Tensor, Tensor, int]:
    """Full-batch L-BFGS with a strong-Wolfe line search from (w0, b0); returns (W, b, iterations).

    The objective is divided by C * n so the gradient tolerance means the same at every C: the mean
    loss plus ||W||^2 / (2 C n), n the known rows (multiclass) or all rows (per-label losses, whose
    penalties then weigh against each label's own summed loss, as in one fit per label).
    """
    w = w0.detach().clone().requires_grad_(True)
    b = b0.detach().clone().requires_grad_(True)
    if task.kind == "multiclass":
        known = y != MISSING
        zk, yk = z[known], y[known]
        n = len(yk)
    else:
        known = task.known(y)
        safe_y = torch.where(known, y, torch.zeros_like(y)).to(z.dtype)
        weight = known.to(z.dtype)    # a multiplying mask: indexing would gather on every evaluation
        n = len(y)
    penalty = 1.0 / (2.0 * c * n)
    # tolerance_change far below float64's useful precision on a mean loss: the gradient test decides
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=tol,
                            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=False)
        if task.kind == "multiclass":
            loss = F.cross_entropy(zk @ w.T + b, yk, reduction="sum") / n
        else:
            loss = F.binary_cross_entropy_with_logits(z @ w.T + b, safe_y, weight, reduction="sum") / n
        loss = loss + penalty * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))  # LBFGS keeps its count on the first param
    return w.detach(), b.detach(), iterations


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
