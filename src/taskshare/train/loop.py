"""The training loop: AdamW, warm-up + cosine (or one-cycle), clipping, mixed precision on CUDA,
early stopping on validation with best-weights restore, and a history for reports.

One function, `fit`, readable top to bottom. Hooks for extra terms (`penalty`, e.g. L2-SP) and for
observers (`callbacks`, called with each epoch's record) keep strategies out of the loop.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..data import ArrayDataset, make_loader, to_dataset
from ..data.loaders import rows
from ..errors import NonFiniteError, TaskshareError
from ..tasks import Task
from .config import TrainConfig, patience_of
from .device import amp_dtype, autocast, resolve_device
from ..distributed import average_gradients, consensus, evaluation_part, gather_rows, is_main, rows_of, world
from .progress import EpochProgress
from .schedule import make_scheduler

log = logging.getLogger("taskshare")


@dataclass
class History:
    """One record per epoch: train loss, validation metrics, learning rate, seconds."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("nan")
    stopped_early: bool = False
    skipped_steps: int = 0
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Optimizer steps the run took."""
        return int(self.epochs[-1].get("step", 0)) if self.epochs else 0

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "best_score": self.best_score,
                "stopped_early": self.stopped_early, "skipped_steps": self.skipped_steps, "seconds": self.seconds}


def _to(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors in a dict/list/tuple (multi-task labels), to `device`."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
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
            outs.append(model(_to(x, device)).float().cpu())
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


def _improved(score: float, best: float, higher: bool) -> bool:
    if best != best:  # first score (best is NaN)
        return score == score
    return score > best if higher else score < best


def make_adamw(param_groups, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step where this torch and device support it (the same
    update, fewer launches: about 70 us less per step for a small head on a CPU)."""
    try:
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)


def epoch_budget(config: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """Epochs and patience. When the training set is so small that `epochs` would give fewer than
    `min_steps` optimizer steps, epochs are repeated to reach it and patience stretches by the same
    factor, so early stopping still waits the same share of training."""
    epochs = max(config.epochs, math.ceil(config.min_steps / max(1, steps_per_epoch)))
    return epochs, math.ceil(patience_of(config) * epochs / config.epochs)


Objective = Callable[[nn.Module, Any, Any], "tuple[Tensor, dict[str, Tensor]]"]
Validator = Callable[[nn.Module], "tuple[float, dict[str, float]]"]


def fit(model: nn.Module, task: Task, train, val=None, config: TrainConfig | None = None,
        param_groups: Sequence[dict] | None = None, penalty: Callable[[], Tensor] | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
        callbacks: Sequence[Callable[[dict], None]] = ()) -> History:
    """Train `model` on `task`; returns the history and leaves the best validation weights in `model`.

    train, val: (x, y) arrays, Datasets or loaders. param_groups: optimizer groups (default: every
    trainable parameter at config.lr). penalty: an extra loss term, called every step. augment: a
    function applied to each training input batch on the device.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    loader = train if hasattr(train, "__iter__") and not isinstance(train, (tuple, list, torch.utils.data.Dataset)) \
        else make_loader(to_dataset(train, "training data"), config.batch_size, shuffle=True, seed=config.seed)
    if val is not None and isinstance(val, (tuple, list)):
        val = to_dataset(val, "validation data")
    _check_data(task, train, val)

    def objective(m: nn.Module, x, y):
        loss = task.loss(m(x), y)
        return loss, {task.name: loss}

    def validate(m: nn.Module):
        metrics = evaluate(m, task, val, device, config.eval_batch_size)
        return metrics[task.main_metric], metrics

    return train_loop(model, loader, objective, validate if val is not None else None, config, task.higher_is_better,
                      param_groups, penalty, augment, callbacks, label=task.name, metric=task.main_metric)


def _check_data(task: Task, train, val) -> None:
    """Labels checked against the task before anything trains (taskshare.validate): a class index
    out of range or an all-unknown task is named here, not met as an IndexError or a division by
    zero. Only labels held in memory are read; other datasets and loaders are trusted."""
    from ..validate import check_labels, check_training_labels
    if isinstance(train, (tuple, list)) and len(train) == 2:
        check_training_labels(task, train[1], "training data", every_class=False)
    elif isinstance(train, ArrayDataset):
        check_training_labels(task, train.y, "training data", every_class=False)
    if isinstance(val, ArrayDataset):
        check_labels(task, val.y, "validation data")


def train_loop(model: nn.Module, loader, objective: Objective, validate: Validator | None, config: TrainConfig,
               higher_is_better: bool = True, param_groups: Sequence[dict] | None = None,
               penalty: Callable[[], Tensor] | None = None, augment: Callable[[Tensor], Tensor] | None = None,
               callbacks: Sequence[Callable[[dict], None]] = (), label: str = "train", metric: str = "score",
               backward: Callable[..., None] | None = None, extra_params: Sequence[Tensor] = (),
               after_step: Callable[[nn.Module, Any, Any], None] | None = None,
               stateful: dict[str, Any] | None = None) -> History:
    """The loop shared by single- and multi-task training. `objective(model, x, y)` returns the total
    loss and its parts by task (named in errors); `validate(model)` returns the selection score and
    the metrics to log. `backward(loss, parts)`, when given, writes the gradients itself (gradient
    balancing); `extra_params` are trained too (a balancing method's own parameters); `after_step(model,
    x, y)` runs after each optimizer step (methods that learn from the step's effect); `stateful` names
    more objects (with state_dict / load_state_dict) that run checkpoints save and restore.

    With config.checkpoint_dir, a run checkpoint is written every config.checkpoint_every steps and at
    each epoch end; config.resume continues from the newest valid one: same parameters, optimizer,
    schedule, data order and random numbers, so the run ends as if never interrupted. SIGTERM saves a
    checkpoint at the next step boundary and exits."""
    device = resolve_device(config.device)
    model.to(device)
    if param_groups is None:
        param_groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": config.lr}]
    param_groups = list(param_groups)
    if extra_params:
        param_groups.append({"params": list(extra_params), "lr": config.lr, "weight_decay": 0.0})
    trainable = [p for g in param_groups for p in g["params"]]
    if not trainable:
        raise TaskshareError("nothing to train: every parameter of the model is frozen")
    epochs, patience = epoch_budget(config, len(loader))
    optimizer = make_adamw(param_groups, config.lr, config.weight_decay)
    accumulate, window, window_share = config.accumulate, 0, 1.0
    scheduler = make_scheduler(optimizer, epochs * -(-len(loader) // accumulate), config.schedule, config.warmup)
    dtype = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

    history, best_state, bad_epochs = History(), None, 0
    started = time.perf_counter()
    run = _Run(config, model, optimizer, scheduler, scaler, loader, stateful or {})
    start_epoch, skip, global_step = 0, 0, 0
    resumed = run.restore()
    if resumed is not None:
        start_epoch, skip, global_step = resumed["epoch"], resumed["batch"], resumed["step"]
        history = History(**resumed["history"])
        best_state, bad_epochs = resumed["best_state"], resumed["bad_epochs"]
    with EpochProgress(epochs, enabled=config.progress and is_main(), label=label) as progress, run.sigterm():
        for epoch in range(start_epoch, epochs):
            model.train()
            t0, loss_sum, steps = time.perf_counter(), torch.zeros((), device=device), 0
            if epoch == start_epoch and resumed is not None:
                run.restore_epoch(resumed)
                loss_sum += resumed["loss_sum"]
                steps = resumed["steps"]
            else:
                run.begin_epoch()
            for batch_index, (x, y) in enumerate(loader):
                if epoch == start_epoch and batch_index < skip:
                    continue                       # the data order is replayed; these steps were done
                x, y = _to(x, device), _to(y, device)
                if augment is not None:
                    x = augment(x)
                with autocast(device, dtype):
                    loss, parts = objective(model, x, y)
                    if penalty is not None:
                        loss = loss + penalty()
                share, (nonfinite, run.stopping) = consensus(rows_of(x), [not torch.isfinite(loss), run.terminate],
                                                             loss.device)
                if nonfinite:                      # every process skips (or stops) together
                    bad = [name for name, part in parts.items() if not torch.isfinite(part)] or \
                        (["penalty"] if not torch.isfinite(loss) else ["(on another process)"])
                    where = f"epoch {epoch}, batch {batch_index}"
                    if config.nonfinite == "stop":
                        raise NonFiniteError(
                            f"task {bad[0]!r}: loss is {loss.item()} at {where}{_rank()}; expected a finite loss "
                            f"(check inputs and lr, or set nonfinite: skip)")
                    history.skipped_steps += 1
                    log.warning("skipped %s%s: loss of %s is not finite", where, _rank(), ", ".join(map(repr, bad)))
                    optimizer.zero_grad(set_to_none=True)
                    window = 0
                    continue
                if batch_index % accumulate == 0:
                    optimizer.zero_grad(set_to_none=True)
                    window = 0
                elif window and share != window_share:
                    # several processes, a window whose micro-batches split unevenly: keep .grad equal to
                    # (sum of share_i * grad_i) / share, which the averaging multiplies back by the last share
                    for p in trainable:
                        if p.grad is not None:
                            p.grad *= window_share / share
                window_share = share
                if scaler is not None and backward is not None:
                    # scaling a unit both starts the scaler and reads its factor; the method sees unscaled gradients
                    backward(loss, parts, float(scaler.scale(torch.ones((), device=device))))
                elif scaler is not None:
                    scaler.scale(loss).backward()
                elif backward is not None:
                    backward(loss, parts)
                else:
                    loss.backward()
                window += 1
                loss_sum += loss.detach()
                steps += 1
                if (batch_index + 1) % accumulate and batch_index + 1 < len(loader):
                    continue                           # gradient accumulation: more micro-batches first
                if window > 1:                         # the mean over the window's micro-batches
                    for p in trainable:
                        if p.grad is not None:
                            p.grad /= window
                # several processes: every replica, the same update. Before the scaler's unscale, so an
                # overflow at any process reaches all of them and every one skips the same step
                average_gradients(trainable, share)
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if config.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(trainable, config.clip_grad)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if after_step is not None:
                    with autocast(device, dtype):
                        after_step(model, x, y)
                scheduler.step()
                global_step += 1
                if run.due(global_step):
                    run.save(epoch, batch_index + 1, global_step, history, best_state, bad_epochs, loss_sum, steps)
            # "step": optimizer steps so far in this run, so a comparison can show each run's budget
            record = {"epoch": epoch, "train_loss": (loss_sum / max(steps, 1)).item(),
                      "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, "step": global_step}
            if validate is not None:
                score, metrics = validate(model)
                record.update({f"val_{k}": v for k, v in metrics.items()})
                record["val_score"] = score
                if _improved(score, history.best_score, higher_is_better):
                    history.best_score, history.best_epoch, bad_epochs = score, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += 1
            history.epochs.append(record)
            progress.update(record, metric)
            for cb in callbacks:
                cb(record)
            stop = validate is not None and bad_epochs >= patience
            if stop:
                history.stopped_early = True
            if run.enabled:
                run.save(epoch + 1 if not stop else epochs, 0, global_step, history, best_state, bad_epochs,
                         torch.zeros(()), 0, epoch_end=True)
            if stop:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif validate is None:
        history.best_epoch = len(history.epochs) - 1
    history.seconds = time.perf_counter() - started
    return history


def _rank() -> str:
    rank, size = world()
    return f" (process {rank} of {size})" if size > 1 else ""


class _Run:
    """Run checkpoints inside train_loop (no-ops without config.checkpoint_dir)."""

    def __init__(self, config, model, optimizer, scheduler, scaler, loader, stateful: dict[str, Any]):
        from .resume import RunCheckpoints
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
        from .resume import rng_state
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
        from .resume import set_rng_state
        if not (self.reading and self.config.resume):
            return None
        if self.store is None:
            from .resume import RunCheckpoints
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
