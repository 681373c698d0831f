"""The ground floor for files: atomic writes, safe names, tensors in safetensors with a JSON sidecar.

Every layer writes through here, so an interrupted write never leaves half a file: each write goes to
a temporary file in the same folder, is flushed to disk, then renamed over the old one. Nothing is
ever unpickled: tensors load from safetensors, or from torch files with weights_only=True.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as tensors_to_bytes
from torch import nn

from .errors import TaskshareError


def safe_name(text: object) -> str:
    """`text` as one file or folder name: runs of anything but letters, digits and _.=- become "_"."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(text)).strip("_")
    return "_" if set(name) <= {"."} else name     # "", "." and ".." would name no file of its own


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    """Indented JSON; values JSON does not know (paths, numpy scalars) are written as their str()."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def sidecar(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write `tensors` to `path` (.safetensors, the suffix added if missing) and `meta` to its JSON
    sidecar; returns the weights' path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    # safetensors wants contiguous CPU tensors that share no storage
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(path, tensors_to_bytes(plain))
    atomic_write_json(sidecar(path), meta)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    side = sidecar(Path(path))
    if not side.exists():
        problem = f"{side} is missing: a taskshare checkpoint has a JSON sidecar next to its weights"
        try:                         # both problems at once: fixing the sidecar alone would not help
            load_tensors(path)
        except TaskshareError as weights:
            problem += f"; and {weights}"
        raise TaskshareError(problem)
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise TaskshareError(f"{side} is not valid JSON ({exc})") from exc


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or from a torch file with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.exists():
        raise TaskshareError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise TaskshareError(f"{path} is not a readable safetensors file ({exc}); it may be truncated") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError and others for refused or broken files
        raise TaskshareError(f"{path} could not be loaded as plain tensors ({type(exc).__name__}: {exc}); "
                             f"files holding pickled objects are refused") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TaskshareError(f"{path} does not hold a dict of tensors")
    return state


def load_into(model: nn.Module, path_or_state: str | Path | dict[str, torch.Tensor], strict: bool = True) -> nn.Module:
    """Copy saved tensors into `model`, checking names and shapes first and naming any mismatch."""
    state = path_or_state if isinstance(path_or_state, dict) else load_tensors(path_or_state)
    own = model.state_dict()
    mismatched = [f"{k}: saved {tuple(v.shape)}, model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched[:5]))
    if strict and missing:
        problems.append(f"missing from the checkpoint: {missing[:5]}")
    if strict and unexpected:
        problems.append(f"not in the model: {unexpected[:5]}")
    if problems:
        raise TaskshareError(f"checkpoint does not fit {type(model).__name__}: " + " | ".join(problems))
    model.load_state_dict(state, strict=strict)
    return model
