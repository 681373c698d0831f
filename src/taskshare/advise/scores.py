"""Transferability scores: how well a frozen trunk's features (or a source model's predictions) suit
a target task, computed before any fine-tuning. Higher is better for every score."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import TaskshareError


def _check(features: Tensor, labels: Tensor, what: str) -> tuple[Tensor, Tensor]:
    features = torch.as_tensor(features).reshape(len(features), -1).double()
    labels = torch.as_tensor(labels).long().reshape(-1)
    if len(features) != len(labels):
        raise TaskshareError(f"{what}: {len(features)} feature rows for {len(labels)} labels")
    if len(labels) < 2 or not torch.isfinite(features).all():
        raise TaskshareError(f"{what}: needs at least 2 samples with finite features")
    if labels.min() < 0:
        raise TaskshareError(f"{what}: labels must be class indices >= 0, got {int(labels.min())}")
    return features, labels


def logme(features: Tensor, labels: Tensor, iters: int = 500, tol: float = 1e-10) -> float:
    """LogME (You et al., ICML 2021): the log marginal evidence per sample of a Bayesian linear
    regression from the features to each one-hot class column, with the prior precision alpha and the
    noise precision beta set by evidence maximisation (MacKay's fixed point, in the SVD basis), averaged
    over classes. The fixed point depends on t = alpha / beta alone and its plain iteration can take
    thousands of steps (50 stopped up to 3.5e-3 short), so it is solved by Steffensen's acceleration of
    that iteration in log t, to `tol` in log t (at most `iters` accelerated steps)."""
    F, y = _check(features, labels, "LogME")
    n, d = F.shape
    U, sigma, _ = torch.linalg.svd(F, full_matrices=False)
    s = (sigma ** 2).numpy()
    U = U.numpy()
    total = 0.0
    classes = int(y.max()) + 1
    for c in range(classes):
        t_c = (y == c).double().numpy()
        x2 = (U.T @ t_c) ** 2
        outside = max(float(t_c @ t_c - x2.sum()), 0.0)   # the part of the target no feature direction spans
        alpha, beta = _evidence_fixed_point(s, x2, outside, n, iters, tol)
        t = alpha / beta
        m2 = float((s * x2 / (s + t) ** 2).sum())
        res2 = float((x2 * (t / (s + t)) ** 2).sum()) + outside
        log_det = float(np.log(alpha + beta * s).sum()) + (d - len(s)) * math.log(alpha)
        evidence = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2)
        total += evidence / n
    return total / classes


def _evidence_fixed_point(s: np.ndarray, x2: np.ndarray, outside: float, n: int, iters: int,
                          tol: float) -> tuple[float, float]:
    """MacKay's updates alpha = gamma / |m|^2, beta = (n - gamma) / |residual|^2 from alpha = beta = 1.
    Both depend on t = alpha / beta only, so the iteration is u -> step(u) in u = log t; Steffensen's
    extrapolation from two steps converges quadratically where the plain steps crawl, and is taken
    only when it leaves a smaller step than the plain one (otherwise the plain double step)."""

    def update(u: float) -> tuple[float, float]:
        t = math.exp(u)
        gamma = float((s / (s + t)).sum())
        m2 = float((s * x2 / (s + t) ** 2).sum())
        res2 = float((x2 * (t / (s + t)) ** 2).sum()) + outside
        return gamma / (m2 + 1e-10), (n - gamma) / (res2 + 1e-10)

    def step(u: float) -> float:   # +-inf where a precision reaches 0 (t runs off; the caller stops)
        alpha, beta = update(u)
        if alpha <= 0 or beta <= 0:
            return math.inf if beta <= 0 else -math.inf
        return math.log(alpha / beta)

    u = 0.0
    for _ in range(iters):
        u1 = step(u)
        if abs(u1 - u) <= tol or not math.isfinite(u1) or abs(u1) > 700:
            u = u1 if math.isfinite(u1) and abs(u1) <= 700 else u
            break
        u2 = step(u1)
        curve = u2 - 2 * u1 + u
        if curve != 0 and math.isfinite(u2):
            jump = u - (u1 - u) ** 2 / curve
            if abs(jump) <= 700 and abs(step(jump) - jump) < abs(u2 - u1):
                u = jump
                continue
        u = u2 if math.isfinite(u2) and abs(u2) <= 700 else u1
    return update(u)


def h_score(features: Tensor, labels: Tensor) -> float:
    """H-score (Bao et al., ICIP 2019): tr(cov(f)^+ cov(E[f | y])), how much of the features' variance
    the class means explain, in the features' own metric."""
    F, y = _check(features, labels, "H-score")
    F = F - F.mean(0)
    cov = F.T @ F / len(F)
    means = torch.zeros_like(F)
    for c in y.unique():
        means[y == c] = F[y == c].mean(0)
    between = means.T @ means / len(F)
    return float(torch.trace(torch.linalg.pinv(cov, hermitian=True, rtol=1e-8) @ between))


def _joint(source_probs: Tensor, labels: Tensor) -> Tensor:
    P = torch.zeros(int(labels.max()) + 1, source_probs.shape[1], dtype=torch.float64)
    P.index_add_(0, labels, source_probs.double())
    return P / len(labels)


def leep(source_probs: Tensor, labels: Tensor) -> float:
    """LEEP (Nguyen et al., ICML 2020): with the source model's class probabilities theta(x) over
    source classes z, the empirical P(y | z) from the target data, the mean log-likelihood
    (1/n) sum_i log sum_z P(y_i | z) theta(x_i)_z. Needs the source head."""
    probs, y = _check(source_probs, labels, "LEEP")
    if (probs < 0).any() or not torch.allclose(probs.sum(1), torch.ones(len(probs), dtype=probs.dtype), atol=1e-4):
        raise TaskshareError("LEEP: expected source class probabilities (rows >= 0 summing to 1); apply softmax")
    joint = _joint(probs, y)
    cond = joint / joint.sum(0, keepdim=True).clamp_min(1e-300)     # P(y | z)
    eep = (probs * cond[y]).sum(1)
    return float(torch.log(eep.clamp_min(1e-300)).mean())


def nce(source_labels: Tensor, labels: Tensor) -> float:
    """NCE (Tran et al., ICCV 2019): -H(Y | Z) from the joint of the target labels Y and the source
    model's hard predictions Z on the target inputs."""
    z = torch.as_tensor(source_labels).long().reshape(-1)
    _, y = _check(torch.zeros(len(z), 1), labels, "NCE")
    onehot = torch.nn.functional.one_hot(z, int(z.max()) + 1).double()
    joint = _joint(onehot, y)
    pz = joint.sum(0, keepdim=True)
    mask = joint > 0
    return float((joint[mask] * torch.log((joint / pz.clamp_min(1e-300))[mask])).sum())
