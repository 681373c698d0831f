"""Run checkpoints for resuming an interrupted training run exactly where it stopped: model,
optimizer, scheduler, grad scaler, the state of balancing methods, the loop's position, the data
order and every random generator. Written atomically (temporary file, fsync, rename) every N steps and
at each epoch end, the newest few kept; loading skips a corrupt or half-written file with a warning
and never unpickles objects (torch.load with weights_only=True)."""
from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_bytes

log = logging.getLogger("taskshare")
NAME = re.compile(r"^step-(\d{9})\.pt$")
FORMAT = "taskshare-run-1"


class RunCheckpoints:
    """The checkpoints of one run in `directory`: step-000000123.pt, newest last."""

    def __init__(self, directory: str | Path, keep: int = 3):
        self.directory, self.keep = Path(directory), max(1, keep)

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted((p for p in self.directory.iterdir() if NAME.match(p.name)), key=lambda p: p.name)

    def save(self, state: dict[str, Any]) -> Path:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **state}, buffer)
        path = self.directory / f"step-{int(state['step']):09d}.pt"
        atomic_write_bytes(path, buffer.getvalue())
        for old in self.files()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads; corrupt or foreign files are skipped with a warning."""
        for path in reversed(self.files()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # truncated, corrupt, or holding objects weights_only refuses
                log.warning("skipping checkpoint %s: it does not load (%s)", path, str(err).splitlines()[0][:120])
                continue
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                log.warning("skipping checkpoint %s: not a taskshare run checkpoint", path)
                continue
            state["path"] = str(path)
            return state
        return None


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
