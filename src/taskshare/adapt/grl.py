"""Gradient reversal (Ganin & Lempitsky, ICML 2015): identity forward, gradient times -coeff backward."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: Tensor, coeff: float = 1.0) -> Tensor:
    return _Reverse.apply(x, coeff)


class GradientReversal(nn.Module):
    """The layer form; `coeff` is set by the trainer from `dann_schedule` every step."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x: Tensor) -> Tensor:
        return reverse_gradient(x, self.coeff)


def dann_schedule(progress: float, gamma: float = 10.0) -> float:
    """The reversal strength over training (progress 0 -> 1): 2 / (1 + exp(-gamma p)) - 1, from 0 to ~1,
    so the untrained discriminator's noisy gradients do not disturb the start."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(progress, 0.0), 1.0))) - 1.0
