"""Transferability scores: how well a frozen trunk's features (or a source model's predictions) suit
a target task, computed before any fine-tuning. Higher is better for every score."""
from __future__ import annotations

import math

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


def logme(features: Tensor, labels: Tensor, iters: int = 50) -> float:
    """LogME (You et al., ICML 2021): the log marginal evidence per sample of a Bayesian linear
    regression from the features to each one-hot class column, with the prior precision alpha and the
    noise precision beta set by evidence maximisation (MacKay's fixed point, in the SVD basis), averaged
    over classes."""
    F, y = _check(features, labels, "LogME")
    n, d = F.shape
    U, sigma, _ = torch.linalg.svd(F, full_matrices=False)
    s = sigma ** 2
    total = 0.0
    classes = int(y.max()) + 1
    for c in range(classes):
        t_c = (y == c).double()
        x = U.T @ t_c
        x2 = x ** 2
        outside = float(t_c @ t_c - x2.sum())           # the part of the target no feature direction spans
        alpha, beta = 1.0, 1.0
        for _ in range(iters):
            t = alpha / beta
            gamma = float((s / (s + t)).sum())
            m2 = float((s * x2 / (s + t) ** 2).sum())
            res2 = float((x2 * (t / (s + t)) ** 2).sum()) + max(outside, 0.0)
            new_alpha, new_beta = gamma / (m2 + 1e-10), (n - gamma) / (res2 + 1e-10)
            done = abs(new_alpha - alpha) / alpha < 1e-6 and abs(new_beta - beta) / beta < 1e-6
            alpha, beta = new_alpha, new_beta
            if done:
                break
        t = alpha / beta
        m2 = float((s * x2 / (s + t) ** 2).sum())
        res2 = float((x2 * (t / (s + t)) ** 2).sum()) + max(outside, 0.0)
        log_det = float(torch.log(alpha + beta * s).sum()) + (d - len(s)) * math.log(alpha)
        evidence = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2)
        total += evidence / n
    return total / classes


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
