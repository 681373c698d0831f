"""How different are two domains? The proxy A-distance (Ben-David et al., 2007): train a linear
classifier to tell source from target features; with held-out error e, PAD = 2 (1 - 2 e), from 0
(indistinguishable) to 2 (perfectly separable)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import TaskshareError


def _fit_logistic(x: Tensor, y: Tensor, steps: int = 300, l2: float = 1e-3) -> tuple[Tensor, Tensor]:
    w = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _standardise(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    both = torch.cat([a, b])
    mean, std = both.mean(0), both.std(0).clamp_min(1e-6)
    return (a - mean) / std, (b - mean) / std


def proxy_a_distance(source: Tensor, target: Tensor, seed: int = 0) -> float:
    """PAD between two feature sets (N, d), from a linear domain classifier trained on half of each
    and tested on the other half."""
    source, target = source.reshape(len(source), -1).double(), target.reshape(len(target), -1).double()
    if len(source) < 4 or len(target) < 4:
        raise TaskshareError(f"proxy A-distance needs at least 4 samples per domain, got {len(source)} and {len(target)}")
    if source.shape[1] != target.shape[1]:
        raise TaskshareError(f"proxy A-distance: source features have width {source.shape[1]}, target {target.shape[1]}")
    g = torch.Generator().manual_seed(seed)
    source, target = _standardise(source, target)
    ps, pt = torch.randperm(len(source), generator=g), torch.randperm(len(target), generator=g)
    hs, ht = len(source) // 2, len(target) // 2
    x_train = torch.cat([source[ps[:hs]], target[pt[:ht]]])
    y_train = torch.cat([torch.ones(hs), torch.zeros(ht)]).double()
    x_test = torch.cat([source[ps[hs:]], target[pt[ht:]]])
    y_test = torch.cat([torch.ones(len(source) - hs), torch.zeros(len(target) - ht)]).double()
    w, b = _fit_logistic(x_train, y_train)
    error = float(((x_test @ w + b > 0).double() != y_test).double().mean())
    error = min(error, 0.5)
    return 2.0 * (1.0 - 2.0 * error)


def domain_weights(source: Tensor, target: Tensor) -> Tensor:
    """Importance weights p_target(x) / p_source(x) for the source samples, from a logistic domain
    classifier (normalised to mean 1, clipped to [0.05, 20] for a bounded variance)."""
    source, target = source.reshape(len(source), -1).double(), target.reshape(len(target), -1).double()
    source, target = _standardise(source, target)
    x = torch.cat([source, target])
    y = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).double()
    w, b = _fit_logistic(x, y, steps=100, l2=1e-2)
    ratio = torch.exp(source @ w + b) * len(source) / len(target)
    ratio = ratio / ratio.mean()
    return ratio.clamp(0.05, 20.0).float()
