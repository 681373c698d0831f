"""The training loop: AdamW, warm-up + cosine (or one-cycle), clipping, mixed precision on CUDA,
early stopping on validation with best-weights restore, and a history for reports.

`fit` trains one task; `train_loop`, shared with multi-task and adaptation training, reads top to
bottom, each part in a module of its own: a step (step.py: forward, the non-finite consensus,
backward), the update (window.py: accumulation, all-reduce, scaler, clipping), the epoch end
(epoch_end.py: validation, early stopping, the history). Options for extra terms (`penalty`, e.g.
L2-SP) and observers (`callbacks`, called with each epoch's record), and hooks for trainers that write
their own gradients (LoopHooks), keep strategies and methods out of the loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..data import ArrayDataset, make_loader, to_dataset
from ..distributed import consensus, is_main, rows_of
from ..errors import TaskshareError
from ..tasks import Task
from .config import TrainConfig, patience_of
from .device import amp_dtype, autocast, resolve_device
from .epoch_end import History, Selection, epoch_record
from .hooks import LoopHooks
from .predict import evaluate, predict
from .progress import EpochProgress
from .resume import ResumableRun
from .schedule import make_scheduler
from .step import forward, refuse_nonfinite
from .window import UpdateWindow, make_adamw

__all__ = ["History", "LoopOptions", "epoch_budget", "evaluate", "fit", "make_adamw", "predict", "train_loop"]


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
    micro-batches (`_batch`: the step, then the update when its window is full) and each epoch's end
    (`_end_epoch`)."""

    def __init__(self, model: nn.Module, loader, objective: Objective, validate: Validator | None,
                 config: TrainConfig, options: LoopOptions, hooks: LoopHooks):
        self.model, self.loader, self.objective = model, loader, objective
        self.config, self.options, self.hooks = config, options, hooks
        self.device = resolve_device(config.device)
        model.to(self.device)
        groups = self._param_groups()
        trainable = [p for g in groups for p in g["params"]]
        if not trainable:
            raise TaskshareError("nothing to train: every parameter of the model is frozen")
        self.epochs, patience = epoch_budget(config, len(loader))
        self.optimizer = make_adamw(groups, config.lr, config.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, self.epochs * -(-len(loader) // config.accumulate),
                                        config.schedule, config.warmup)
        self.dtype = amp_dtype(config.amp, self.device)
        scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        self.window = UpdateWindow(self.optimizer, scaler, trainable, config.accumulate, config.clip_grad, self.device)
        self.checkpoints = ResumableRun(config, model, self.optimizer, self.scheduler, scaler, loader, hooks.state())
        self.selection = Selection(validate, options.higher_is_better, patience)
        self.history, self.global_step = History(), 0
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
        if self.selection.best_state is not None:
            self.model.load_state_dict(self.selection.best_state)
        elif self.selection.validate is None:
            self.history.best_epoch = len(self.history.epochs) - 1
        self.history.seconds = time.perf_counter() - started
        return self.history

    def _resume(self, resumed: dict | None) -> tuple[int, int]:
        """The epoch and batch to continue from (0, 0 for a fresh run); the run's progress restored."""
        if resumed is None:
            return 0, 0
        self.global_step = resumed["step"]
        self.history = History(**resumed["history"])
        self.selection.best_state, self.selection.bad_epochs = resumed["best_state"], resumed["bad_epochs"]
        return resumed["epoch"], resumed["batch"]

    def _begin_epoch(self, resumed: dict | None) -> None:
        self.loss_sum, self.steps = torch.zeros((), device=self.device), 0
        if resumed is not None:                        # mid-epoch: its loader position and running loss
            self.checkpoints.restore_epoch(resumed)
            self.loss_sum += resumed["loss_sum"]
            self.steps = resumed["steps"]
        else:
            self.checkpoints.begin_epoch()

    def _batch(self, epoch: int, batch_index: int, x, y) -> None:
        """The step (forward, the non-finite consensus, backward); the update when the window is full."""
        x, y, loss, parts = forward(self.model, self.objective, x, y, self.device, self.dtype,
                                    self.options.augment, self.options.penalty)
        share, (nonfinite, self.checkpoints.stopping) = consensus(
            rows_of(x), [not torch.isfinite(loss), self.checkpoints.terminate], loss.device)
        if nonfinite:                                  # every process skips (or stops) together
            refuse_nonfinite(loss, parts, f"epoch {epoch}, batch {batch_index}", self.config.nonfinite)
            self.history.skipped_steps += 1
            self.window.discard()
            return
        self.window.open(batch_index, share)
        self.window.backward(self.hooks, loss, parts)
        self.loss_sum += loss.detach()
        self.steps += 1
        if not self.window.full(batch_index, len(self.loader)):
            return                                     # gradient accumulation: more micro-batches first
        self.window.apply(share)
        with autocast(self.device, self.dtype):
            self.hooks.after_step(self.model, x, y)
        self.scheduler.step()
        self.global_step += 1
        if self.checkpoints.due(self.global_step):
            self._save(epoch, batch_index + 1, self.loss_sum, self.steps)

    def _end_epoch(self, epoch: int, t0: float, progress: EpochProgress) -> bool:
        """The epoch's record, validation and early stopping, the hooks and callbacks, the epoch's
        checkpoint. True when training stops here."""
        record = epoch_record(epoch, self.loss_sum, self.steps, self.optimizer, t0, self.global_step)
        self.selection.score(self.model, epoch, record, self.history)
        self.history.epochs.append(record)
        progress.update(record, self.options.metric)
        self.hooks.end_epoch(record)
        for cb in self.options.callbacks:
            cb(record)
        stop = self.selection.stop
        if stop:
            self.history.stopped_early = True
        if self.checkpoints.enabled:
            self._save(epoch + 1 if not stop else self.epochs, 0, torch.zeros(()), 0, epoch_end=True)
        return stop

    def _save(self, epoch: int, batch: int, loss_sum: Tensor, steps: int, epoch_end: bool = False) -> None:
        self.checkpoints.save(epoch, batch, self.global_step, self.history, self.selection.best_state,
                              self.selection.bad_epochs, loss_sum, steps, epoch_end=epoch_end)
