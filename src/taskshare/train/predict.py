"""Outputs and metrics of a model over a dataset or loader, in eval mode: what validation and the
final test call, on one process or split between several."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..data import make_loader, to_dataset
from ..data.loaders import rows
from ..data.multitask import JointLabels
from ..distributed import evaluation_part, gather_rows
from ..tasks import Task
from .device import autocast


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors in a dict/list/tuple (multi-task labels), to `device`."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, JointLabels):     # keeps saying whose rows are whose
        return JointLabels((k, to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def predict(model: nn.Module, data, device: torch.device | None = None, batch_size: int = 1024,
            amp: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Outputs and targets over a whole dataset or loader, in eval mode, on the CPU. Under several
    processes a Dataset is split between them (each runs its contiguous part) and every process gets
    the whole result, in order; a loader is taken as it is."""
    device = device or next(model.parameters()).device
    part = evaluation_part(len(data)) if isinstance(data, torch.utils.data.Dataset) else None  # type: ignore[arg-type]
    if isinstance(data, torch.utils.data.Dataset):
        loader = make_loader(rows(data, part) if part is not None else data, batch_size, shuffle=False, sharded=False)
    else:
        loader = data
    was_training = model.training
    model.eval()
    outs, ys = [], []
    for x, y in loader:
        with autocast(device, amp):
            outs.append(model(to_device(x, device)).float().cpu())
        ys.append(torch.as_tensor(y).cpu())
    model.train(was_training)
    out, y = torch.cat(outs), torch.cat(ys)
    return (gather_rows(out), gather_rows(y)) if part is not None else (out, y)


def evaluate(model: nn.Module, task: Task, data, device: torch.device | None = None, batch_size: int = 1024) -> dict[str, float]:
    """`task`'s metrics of `model` on an (x, y) pair, a Dataset or a loader."""
    if isinstance(data, (tuple, list)):
        data = to_dataset(data, "evaluation data")
    out, y = predict(model, data, device, batch_size)
    return task.metrics(out, y)
