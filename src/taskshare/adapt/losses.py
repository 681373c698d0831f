"""Parameter-free domain-adaptation losses as plain functions."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor


def check_feature_pair(source: Tensor, target: Tensor, what: str) -> None:
    from ..errors import TaskshareError
    if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
        raise TaskshareError(f"{what}: expected (batch, features) source and target with the same width, "
                             f"got {tuple(source.shape)} and {tuple(target.shape)}")
    if len(source) < 2 or len(target) < 2:
        raise TaskshareError(f"{what}: needs at least 2 samples per domain, got {len(source)} and {len(target)}")


def gaussian_kernels(z: Tensor, multipliers: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> Tensor:
    """Sum of Gaussian kernel matrices over the rows of z, bandwidths = the mean pairwise squared
    distance times each multiplier. The bandwidth stays in the graph: the kernels are then exactly
    invariant to the features' scale, so their gradient has no component that shrinks the features.
    (Detached, it had one: shrinking every feature lowered the loss, the next batch's bandwidth
    followed, and the pull, growing as 1 / scale, collapsed an unnormalised trunk's features.)"""
    d2 = torch.cdist(z, z).pow(2)
    n = len(z)
    base = (d2.sum() / (n * n - n)).clamp_min(1e-12)
    return sum(torch.exp(-d2 / (base * m)) for m in multipliers)


def multi_kernel_mmd(source: Tensor, target: Tensor, multipliers: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> Tensor:
    """Squared MMD with a sum of Gaussian kernels (DAN, Long et al., ICML 2015), the biased estimator
    (>= 0, 0 for identical samples); kernels from `gaussian_kernels`."""
    check_feature_pair(source, target, "mmd")
    k = gaussian_kernels(torch.cat([source, target]).float(), multipliers)
    s = len(source)
    return k[:s, :s].mean() + k[s:, s:].mean() - 2 * k[:s, s:].mean()


def coral(source: Tensor, target: Tensor) -> Tensor:
    """Deep CORAL (Sun & Saenko, ECCV-W 2016): ||C_s - C_t||_F^2 / (4 d^2), C the feature covariances."""
    check_feature_pair(source, target, "coral")
    d = source.shape[1]

    def cov(x: Tensor) -> Tensor:
        x = x.float() - x.float().mean(0, keepdim=True)
        return x.T @ x / (len(x) - 1)

    return (cov(source) - cov(target)).pow(2).sum() / (4 * d * d)


def entropy(logits: Tensor) -> Tensor:
    """Mean Shannon entropy of the predicted class distributions (entropy minimisation, Grandvalet &
    Bengio, NeurIPS 2004)."""
    p = torch.softmax(logits.float(), 1)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()


def information_maximization(logits: Tensor, diversity: float = 1.0) -> Tensor:
    """Information maximisation (Krause et al., NeurIPS 2010; the form SHOT and IM-based adaptation
    use): the mean entropy of the predictions minus `diversity` times the entropy of their mean.
    Lower is better: confident, and spread over the classes rather than collapsed onto a few."""
    p = torch.softmax(logits.float(), 1)
    mean_entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()
    p_bar = p.mean(0)
    return mean_entropy + diversity * (p_bar * torch.log(p_bar.clamp_min(1e-12))).sum()


def minimum_class_confusion(logits: Tensor, temperature: float = 2.5) -> Tensor:
    """MCC (Jin et al., ECCV 2020): temperature-scaled probabilities, samples weighted by certainty
    (1 + exp(-entropy), normalised to sum to the batch size), the class-correlation matrix P^T W P with
    rows normalised to sum to 1; the loss is the off-diagonal mass divided by the number of classes."""
    p = torch.softmax(logits.float() / temperature, 1)
    n, c = p.shape
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(1).detach()
    w = 1 + torch.exp(-h)
    w = n * w / w.sum()
    confusion = (p * w[:, None]).T @ p
    confusion = confusion / confusion.sum(1, keepdim=True).clamp_min(1e-12)
    return (confusion.sum() - confusion.trace()) / c


def pseudo_label(logits: Tensor, threshold: float = 0.95, portion: float | None = None) -> Tensor:
    """Self-training: cross-entropy of confident target predictions against their own arg-max, summed
    and divided by the whole batch (as FixMatch does), so the term grows with the share of confident
    predictions; 0 when none is confident. (Averaged over the confident ones only, two confident
    samples early in training pulled as hard as a whole batch, and their errors were learned before
    the source task had taught the model anything: -10 points on rotated digits.)

    Confident: max probability >= `threshold`; with `portion` (class-balanced self-training, CBST,
    Zou et al., ECCV 2018), also the most confident `portion` of the samples predicted as each class,
    whatever their probability: an absolute threshold of 0.95 selected nothing on an under-trained
    model, and the term never changed training."""
    p = torch.softmax(logits.detach().float(), 1)
    confidence, labels = p.max(1)
    keep = confidence >= threshold
    if portion is not None:
        for k in labels.unique():
            members = (labels == k).nonzero().squeeze(1)
            top = max(1, math.ceil(portion * len(members)))
            keep[members[confidence[members].topk(top).indices]] = True
    per_sample = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
    return (per_sample * keep.float()).sum() / len(logits)
