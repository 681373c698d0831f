"""A trained model's checkpoint: its state (or the trained part of it, e.g. LoRA adapters and head)
in safetensors, with a JSON sidecar naming the format and the model. The file mechanics (atomic
writes, loading without unpickling, shape checks) live in taskshare.io, the ground floor, so layers
below training can read weights without importing train.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import save_tensors

FORMAT = "taskshare-checkpoint-1"


def save(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None,
         state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the model's state (or the given part of it) and a description; returns the weights' path."""
    state = model.state_dict() if state is None else state
    info = {"format": FORMAT, "model": type(model).__name__, **(meta or {})}
    return save_tensors(path, state, info)
