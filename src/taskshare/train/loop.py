"""The training loop: AdamW, warm-up + cosine (or one-cycle), clipping, mixed precision on CUDA,
early stopping on validation with best-weights restore, and a history for reports.

`fit` trains one task; `train_loop`, shared with multi-task and adaptation training, reads top to
bottom (a step, the update, the epoch end). Options for extra terms (`penalty`, e.g. L2-SP) and
observers (`callbacks`, called with each epoch's record), and hooks for trainers that write their own
gradients (LoopHooks), keep strategies and methods out of the loop.
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
from .hooks import LoopHooks
from .progress import EpochProgress
from .resume import ResumableRun
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

    options = LoopOptions(task.higher_is_better, param_groups, penalty, augment, callbacks, task.name, task.main_metric)
    return train_loop(model, loader, objective, validate if val is not None else None, config, options)


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


@dataclass
class LoopOptions:
    """What train_loop adds to plain training and how it reports; every default is plain training."""

    higher_is_better: bool = True                           # of validate's score
    param_groups: Sequence[dict] | None = None              # default: every trainable parameter at config.lr
    penalty: Callable[[], Tensor] | None = None             # an extra loss term, called every step (L2-SP)
    augment: Callable[[Tensor], Tensor] | None = None       # applied to each training input batch on the device
    callbacks: Sequence[Callable[[dict], None]] = ()        # called with each epoch's record
    label: str = "train"                                    # for the progress line
    metric: str = "score"                                   # the validation metric the progress line shows


def train_loop(model: nn.Module, loader, objective: Objective, validate: Validator | None, config: TrainConfig,
               options: LoopOptions | None = None, hooks: LoopHooks | None = None) -> History:
    """The loop shared by single-task, multi-task and adaptation training. `objective(model, x, y)`
    returns the total loss and its parts by task (named in errors); `validate(model)` returns the
    selection score and the metrics to log. `hooks` (LoopHooks) plug a trainer in: its own backward
    (gradient balancing), parameters trained along, a step after the optimizer's, the epoch end, and
    the state run checkpoints keep.

    With config.checkpoint_dir, a run checkpoint is written every config.checkpoint_every steps and at
    each epoch end; config.resume continues from the newest valid one: same parameters, optimizer,
    schedule, data order and random numbers, so the run ends as if never interrupted. SIGTERM saves a
    checkpoint at the next step boundary and exits."""
    return _Trainer(model, loader, objective, validate, config, options or LoopOptions(), hooks or LoopHooks()).run()


class _Trainer:
    """One call of train_loop: the set-up in __init__, then `run` reads top to bottom: epochs of
    micro-batches (`_batch`: forward, non-finite consensus, backward), the update when a window of
    micro-batches is full (`_apply_update`), and each epoch's end (`_end_epoch`)."""

    def __init__(self, model: nn.Module, loader, objective: Objective, validate: Validator | None,
                 config: TrainConfig, options: LoopOptions, hooks: LoopHooks):
        self.model, self.loader, self.objective, self.validate = model, loader, objective, validate
        self.config, self.options, self.hooks = config, options, hooks
        self.device = resolve_device(config.device)
        model.to(self.device)
        groups = self._param_groups()
        self.trainable = [p for g in groups for p in g["params"]]
        if not self.trainable:
            raise TaskshareError("nothing to train: every parameter of the model is frozen")
        self.epochs, self.patience = epoch_budget(config, len(loader))
        self.optimizer = make_adamw(groups, config.lr, config.weight_decay)
        self.accumulate = config.accumulate
        self.scheduler = make_scheduler(self.optimizer, self.epochs * -(-len(loader) // self.accumulate),
                                        config.schedule, config.warmup)
        self.dtype = amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        self.checkpoints = ResumableRun(config, model, self.optimizer, self.scheduler, self.scaler, loader, hooks.state())
        self.history, self.best_state, self.bad_epochs, self.global_step = History(), None, 0, 0
        self.window, self.window_share = 0, 1.0     # micro-batches in the open accumulation window, its share
        self.loss_sum, self.steps = torch.zeros((), device=self.device), 0   # this epoch's

    def _param_groups(self) -> list[dict]:
        groups = self.options.param_groups
        if groups is None:
            groups = [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": self.config.lr}]
        groups = list(groups)
        extra = self.hooks.parameters()
        if extra:
            groups.append({"params": list(extra), "lr": self.config.lr, "weight_decay": 0.0})
        return groups

    def run(self) -> History:
        started = time.perf_counter()
        resumed = self.checkpoints.restore()
        start_epoch, skip = self._resume(resumed)
        with EpochProgress(self.epochs, enabled=self.config.progress and is_main(), label=self.options.label) \
                as progress, self.checkpoints.sigterm():
            for epoch in range(start_epoch, self.epochs):
                self.model.train()
                t0 = time.perf_counter()
                self._begin_epoch(resumed if epoch == start_epoch else None)
                for batch_index, (x, y) in enumerate(self.loader):
                    if epoch == start_epoch and batch_index < skip:
                        continue                       # the data order is replayed; these steps were done
                    self._batch(epoch, batch_index, x, y)
                if self._end_epoch(epoch, t0, progress):
                    break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif self.validate is None:
            self.history.best_epoch = len(self.history.epochs) - 1
        self.history.seconds = time.perf_counter() - started
        return self.history

    def _resume(self, resumed: dict | None) -> tuple[int, int]:
        """The epoch and batch to continue from (0, 0 for a fresh run); the run's progress restored."""
        if resumed is None:
            return 0, 0
        self.global_step = resumed["step"]
        self.history = History(**resumed["history"])
        self.best_state, self.bad_epochs = resumed["best_state"], resumed["bad_epochs"]
        return resumed["epoch"], resumed["batch"]

    def _begin_epoch(self, resumed: dict | None) -> None:
        self.loss_sum, self.steps = torch.zeros((), device=self.device), 0
        if resumed is not None:                        # mid-epoch: its loader position and running loss
            self.checkpoints.restore_epoch(resumed)
            self.loss_sum += resumed["loss_sum"]
            self.steps = resumed["steps"]
        else:
            self.checkpoints.begin_epoch()

    # --- one micro-batch -------------------------------------------------------------------------
    def _batch(self, epoch: int, batch_index: int, x, y) -> None:
        """Forward, the non-finite consensus, backward; the update when the window is full."""
        x, y = _to(x, self.device), _to(y, self.device)
        if self.options.augment is not None:
            x = self.options.augment(x)
        with autocast(self.device, self.dtype):
            loss, parts = self.objective(self.model, x, y)
            if self.options.penalty is not None:
                loss = loss + self.options.penalty()
        share, (nonfinite, self.checkpoints.stopping) = consensus(
            rows_of(x), [not torch.isfinite(loss), self.checkpoints.terminate], loss.device)
        if nonfinite:                                  # every process skips (or stops) together
            self._skip_nonfinite(loss, parts, f"epoch {epoch}, batch {batch_index}")
            return
        self._open_window(batch_index, share)
        self._backward(loss, parts)
        self.window += 1
        self.loss_sum += loss.detach()
        self.steps += 1
        if (batch_index + 1) % self.accumulate and batch_index + 1 < len(self.loader):
            return                                     # gradient accumulation: more micro-batches first
        self._apply_update(share)
        with autocast(self.device, self.dtype):
            self.hooks.after_step(self.model, x, y)
        self.scheduler.step()
        self.global_step += 1
        if self.checkpoints.due(self.global_step):
            self._save(epoch, batch_index + 1, self.loss_sum, self.steps)

    def _skip_nonfinite(self, loss: Tensor, parts: dict[str, Tensor], where: str) -> None:
        bad = [name for name, part in parts.items() if not torch.isfinite(part)] or \
            (["penalty"] if not torch.isfinite(loss) else ["(on another process)"])
        if self.config.nonfinite == "stop":
            raise NonFiniteError(f"task {bad[0]!r}: loss is {loss.item()} at {where}{_rank()}; expected a finite loss "
                                 f"(check inputs and lr, or set nonfinite: skip)")
        self.history.skipped_steps += 1
        log.warning("skipped %s%s: loss of %s is not finite", where, _rank(), ", ".join(map(repr, bad)))
        self.optimizer.zero_grad(set_to_none=True)
        self.window = 0

    def _open_window(self, batch_index: int, share: float) -> None:
        """The first micro-batch of a window clears .grad; a later one with another share (several
        processes, uneven micro-batches) keeps .grad equal to (sum of share_i * grad_i) / share, which
        the averaging multiplies back by the last share."""
        if batch_index % self.accumulate == 0:
            self.optimizer.zero_grad(set_to_none=True)
            self.window = 0
        elif self.window and share != self.window_share:
            for p in self.trainable:
                if p.grad is not None:
                    p.grad *= self.window_share / share
        self.window_share = share

    def _backward(self, loss: Tensor, parts: dict[str, Tensor]) -> None:
        if self.scaler is None:
            self.hooks.backward(loss, parts)
        else:   # scaling a unit both starts the scaler and reads its factor
            self.hooks.backward(loss, parts, float(self.scaler.scale(torch.ones((), device=self.device))))

    def _apply_update(self, share: float) -> None:
        """The window's mean gradient, the same on every process, unscaled and clipped, then the step."""
        if self.window > 1:
            for p in self.trainable:
                if p.grad is not None:
                    p.grad /= self.window
        # several processes: every replica, the same update. Before the scaler's unscale, so an
        # overflow at any process reaches all of them and every one skips the same step
        average_gradients(self.trainable, share)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    # --- the end of an epoch ---------------------------------------------------------------------
    def _end_epoch(self, epoch: int, t0: float, progress: EpochProgress) -> bool:
        """The epoch's record, validation and early stopping, the hooks and callbacks, the epoch's
        checkpoint. True when training stops here."""
        # "step": optimizer steps so far in this run, so a comparison can show each run's budget
        record = {"epoch": epoch, "train_loss": (self.loss_sum / max(self.steps, 1)).item(),
                  "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                  "step": self.global_step}
        if self.validate is not None:
            self._validate(epoch, record)
        self.history.epochs.append(record)
        progress.update(record, self.options.metric)
        self.hooks.end_epoch(record)
        for cb in self.options.callbacks:
            cb(record)
        stop = self.validate is not None and self.bad_epochs >= self.patience
        if stop:
            self.history.stopped_early = True
        if self.checkpoints.enabled:
            self._save(epoch + 1 if not stop else self.epochs, 0, torch.zeros(()), 0, epoch_end=True)
        return stop

    def _validate(self, epoch: int, record: dict) -> None:
        score, metrics = self.validate(self.model)
        record.update({f"val_{k}": v for k, v in metrics.items()})
        record["val_score"] = score
        if _improved(score, self.history.best_score, self.options.higher_is_better):
            self.history.best_score, self.history.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_epochs += 1

    def _save(self, epoch: int, batch: int, loss_sum: Tensor, steps: int, epoch_end: bool = False) -> None:
        self.checkpoints.save(epoch, batch, self.global_step, self.history, self.best_state, self.bad_epochs,
                              loss_sum, steps, epoch_end=epoch_end)


def _rank() -> str:
    rank, size = world()
    return f" (process {rank} of {size})" if size > 1 else ""
