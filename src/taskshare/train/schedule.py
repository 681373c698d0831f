"""Per-step learning-rate multipliers."""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_multiplier(step: int, total: int, kind: str, warmup: float) -> float:
    """Multiplier of each group's base rate at `step` of `total`."""
    if kind == "onecycle":  # up for 30% of steps, then cosine down to 1/100 of the start's 1/25
        peak = max(1, int(0.3 * total))
        if step < peak:
            return 0.04 + 0.96 * step / peak
        t = (step - peak) / max(1, total - peak)
        return 4e-4 + (1 - 4e-4) * 0.5 * (1 + math.cos(math.pi * t))
    warm = int(warmup * total)
    if step < warm:
        return (step + 1) / (warm + 1)
    if kind == "constant":
        return 1.0
    t = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def make_scheduler(optimizer: Optimizer, total_steps: int, kind: str, warmup: float) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: lr_multiplier(step, total_steps, kind, warmup))
