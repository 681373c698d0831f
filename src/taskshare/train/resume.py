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

from ..distributed import is_main, world
from ..errors import TaskshareError
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


class ResumableRun:
    """train_loop's run checkpoints: when to write one, what goes in, restoring from the newest, and
    SIGTERM (no-ops without config.checkpoint_dir)."""

    def __init__(self, config, model, optimizer, scheduler, scaler, loader, stateful: dict[str, Any]):
        self.config, self.model, self.optimizer, self.scheduler, self.scaler = config, model, optimizer, scheduler, scaler
        self.loader, self.stateful = loader, stateful
        self.enabled = config.checkpoint_dir is not None and is_main()   # only rank 0 writes
        self.reading = config.checkpoint_dir is not None                # every rank resumes from them
        self.store = RunCheckpoints(config.checkpoint_dir, config.keep_checkpoints) if self.enabled else None
        self.loader_state = None
        self.terminate = False     # SIGTERM arrived at this process
        self.stopping = False      # ... at any process, as of the last step's check (all agree)
        self.generator = getattr(loader, "generator", None)
        if not isinstance(self.generator, torch.Generator):
            self.generator = None
        if self.enabled and self.generator is None and not hasattr(loader, "load_state_dict"):
            log.warning("this loader has no torch.Generator: a resumed run will see a different data order")

    def due(self, step: int) -> bool:
        if self.stopping or (self.terminate and world()[1] == 1):
            return True
        if not self.enabled:
            return False
        return self.config.checkpoint_every > 0 and step % self.config.checkpoint_every == 0

    def _loader_position(self):
        """The loader's own state where it has one (order and cursor across epochs), else its generator's."""
        if hasattr(self.loader, "state_dict"):
            return self.loader.state_dict()
        return self.generator.get_state() if self.generator is not None else None

    def begin_epoch(self) -> None:
        self.loader_state = self._loader_position()

    def save(self, epoch, batch, step, history, best_state, bad_epochs, loss_sum, steps, epoch_end=False) -> None:
        if not self.enabled:
            if self.stopping or self.terminate:
                raise SystemExit(143)          # rank 0 saves the run; the others leave with it
            return
        state = {"epoch": epoch, "batch": batch, "step": step, "history": history.to_dict(),
                 "best_state": best_state, "bad_epochs": bad_epochs, "loss_sum": loss_sum.detach().cpu(),
                 "steps": steps, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng": rng_state(),
                 "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                 "stateful": {k: v.state_dict() for k, v in self.stateful.items()},
                 "loader": self._loader_position() if epoch_end else self.loader_state}
        path = self.store.save(state)
        if self.terminate or self.stopping:
            log.warning("SIGTERM: saved %s; exiting", path)
            raise SystemExit(143)

    def restore(self) -> dict | None:
        if not (self.reading and self.config.resume):
            return None
        if self.store is None:
                self.store = RunCheckpoints(self.config.checkpoint_dir, self.config.keep_checkpoints)
        state = self.store.latest()
        if state is None:
            log.info("no run checkpoint in %s: starting from the beginning", self.config.checkpoint_dir)
            return None
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            detail = "; ".join(line.strip() for line in str(err).splitlines()[1:] if line.strip()) or str(err)
            raise TaskshareError(f"{state['path']} was written by another model: {detail}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for name, obj in self.stateful.items():
            if name in state["stateful"]:
                obj.load_state_dict(state["stateful"][name])
        set_rng_state(state["rng"])
        log.info("resumed from %s (epoch %d, batch %d, step %d)", state["path"], state["epoch"], state["batch"], state["step"])
        return state

    def restore_epoch(self, state: dict) -> None:
        position = state.get("loader")
        if position is not None and hasattr(self.loader, "load_state_dict") and isinstance(position, dict):
            self.loader.load_state_dict(position)
        elif position is not None and self.generator is not None and isinstance(position, torch.Tensor):
            self.generator.set_state(position)
        self.loader_state = position

    def sigterm(self):
        import contextlib
        import signal
        import threading
        if not self.reading or threading.current_thread() is not threading.main_thread():
            return contextlib.nullcontext()     # every process catches it; they stop at the same step

        @contextlib.contextmanager
        def handler():
            def flag(signum, frame):
                self.terminate = True
            previous = signal.signal(signal.SIGTERM, flag)
            try:
                yield
            finally:
                signal.signal(signal.SIGTERM, previous)
        return handler()
