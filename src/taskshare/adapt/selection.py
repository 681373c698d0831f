"""Model selection without target labels. Both scores weight each labelled source validation sample
by p_target / p_source of its features (a logistic domain classifier): IWV (Sugiyama et al., JMLR
2007) takes the weighted mean loss; DEV (You et al., ICML 2019) adds a control variate, the weights'
own mean being 1 in expectation, which lowers the variance of that estimate."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..tasks import Task
from ..train.loop import predict
from .shift import domain_weights


@torch.no_grad()
def _features(model, x: Tensor, device) -> Tensor:
    return torch.cat([model.trunk(x[i:i + 1024].to(device)).reshape(len(x[i:i + 1024]), -1).float().cpu()
                      for i in range(0, len(x), 1024)])


@torch.no_grad()
def weighted_losses(model, task: Task, val: Any, x_target: Tensor, device) -> tuple[Tensor, Tensor]:
    """Per-sample source validation losses and their importance weights (mean 1)."""
    was = model.training
    model.eval()
    xs = val.x if hasattr(val, "x") else torch.stack([torch.as_tensor(val[i][0]) for i in range(len(val))])
    xt = x_target[torch.randperm(len(x_target), generator=torch.Generator().manual_seed(0))[:len(xs)]]
    weights = domain_weights(_features(model, xs, device), _features(model, xt, device))
    out, y = predict(model, val, device)
    if task.kind == "multiclass":
        per_sample = torch.nn.functional.cross_entropy(out.float(), y.long(), reduction="none")
    else:
        per_sample = torch.stack([task.loss(out[i:i + 1], y[i:i + 1]) for i in range(len(y))])
    model.train(was)
    return per_sample.float(), weights.float()


def iwv_score(losses: Tensor, weights: Tensor) -> float:
    """The importance-weighted mean loss (lower is better)."""
    return float((weights * losses).mean())


def dev_score(losses: Tensor, weights: Tensor) -> float:
    """Deep embedded validation: mean(w l) + eta mean(w) - eta, eta = -Cov(w l, w) / Var(w) the
    variance-minimising coefficient (lower is better). With constant weights it is the plain mean."""
    wl = weights * losses
    var = weights.var(unbiased=True) if len(weights) > 1 else torch.zeros(())
    if float(var) <= 1e-12:
        return float(wl.mean())
    cov = ((wl - wl.mean()) * (weights - weights.mean())).sum() / (len(weights) - 1)
    eta = -cov / var
    return float(wl.mean() + eta * weights.mean() - eta)


def importance_weighted_loss(model, task: Task, val: Any, x_target: Tensor, device) -> float:
    """The source validation loss with each sample weighted by p_target / p_source of its features."""
    return iwv_score(*weighted_losses(model, task, val, x_target, device))
