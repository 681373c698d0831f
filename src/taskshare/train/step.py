"""The step of train_loop, one micro-batch: the batch on the device (augmented), the forward pass
under autocast with any penalty added, and what a non-finite loss does (stop, or skip with a
warning). Whether a loss is non-finite is agreed between processes by the loop, so all skip together."""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..distributed import world
from ..errors import NonFiniteError
from .device import autocast
from .predict import to_device

log = logging.getLogger("taskshare")


def forward(model: nn.Module, objective, x: Any, y: Any, device: torch.device, dtype: torch.dtype | None,
            augment: Callable[[Tensor], Tensor] | None, penalty: Callable[[], Tensor] | None):
    """(x, y, loss, parts): the batch as the model saw it, the total loss and its parts by task."""
    x, y = to_device(x, device), to_device(y, device)
    if augment is not None:
        x = augment(x)
    with autocast(device, dtype):
        loss, parts = objective(model, x, y)
        if penalty is not None:
            loss = loss + penalty()
    return x, y, loss, parts


def refuse_nonfinite(loss: Tensor, parts: dict[str, Tensor], where: str, policy: str) -> None:
    """Raise under `policy` "stop", naming the first non-finite part; otherwise log the skip."""
    bad = [name for name, part in parts.items() if not torch.isfinite(part)] or \
        (["penalty"] if not torch.isfinite(loss) else ["(on another process)"])
    if policy == "stop":
        raise NonFiniteError(f"task {bad[0]!r}: loss is {loss.item()} at {where}{rank_note()}; expected a finite loss "
                             f"(check inputs and lr, or set nonfinite: skip)")
    log.warning("skipped %s%s: loss of %s is not finite", where, rank_note(), ", ".join(map(repr, bad)))


def rank_note() -> str:
    rank, size = world()
    return f" (process {rank} of {size})" if size > 1 else ""
