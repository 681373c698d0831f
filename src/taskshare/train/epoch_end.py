"""The end of an epoch in train_loop: its record, model selection on validation (best weights kept)
and early stopping, and the History a run returns."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn


@dataclass
class History:
    """One record per epoch: train loss, validation metrics, learning rate, seconds."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("nan")
    stopped_early: bool = False
    skipped_steps: int = 0
    seconds: float = 0.0
    kept_start: bool = False   # the caller restored the weights it started with (better on validation)

    @property
    def steps(self) -> int:
        """Optimizer steps the run took."""
        return int(self.epochs[-1].get("step", 0)) if self.epochs else 0

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "best_score": self.best_score,
                "stopped_early": self.stopped_early, "skipped_steps": self.skipped_steps, "seconds": self.seconds,
                "kept_start": self.kept_start}


def epoch_record(epoch: int, loss_sum: Tensor, steps: int, optimizer: torch.optim.Optimizer, t0: float,
                 global_step: int) -> dict:
    """The epoch's mean training loss, learning rate and seconds. "step": optimizer steps so far in
    this run, so a comparison can show each run's budget."""
    return {"epoch": epoch, "train_loss": (loss_sum / max(steps, 1)).item(),
            "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, "step": global_step}


def ends_below(score: float, start: float, higher_is_better: bool) -> bool:
    """A run's best validation score is worse than the one it started from (NaN counts as worse): the
    caller then keeps the weights it started with, since fit keeps the best of its own epochs only."""
    if score != score:
        return True
    return score < start if higher_is_better else score > start


def _improved(score: float, best: float, higher: bool) -> bool:
    if best != best:  # first score (best is NaN)
        return score == score
    return score > best if higher else score < best


class Selection:
    """Model selection on validation: the best score's weights kept, early stopping after `patience`
    epochs without improvement. Without a validator nothing is selected and nothing stops."""

    def __init__(self, validate: Callable[[nn.Module], "tuple[float, dict[str, float]]"] | None,
                 higher_is_better: bool, patience: int):
        self.validate, self.higher_is_better, self.patience = validate, higher_is_better, patience
        self.best_state: dict | None = None
        self.bad_epochs = 0

    def score(self, model: nn.Module, epoch: int, record: dict, history: History) -> None:
        """Validate `model`, add the metrics to `record`, keep its weights if it is the best so far."""
        if self.validate is None:
            return
        score, metrics = self.validate(model)
        record.update({f"val_{k}": v for k, v in metrics.items()})
        record["val_score"] = score
        if _improved(score, history.best_score, self.higher_is_better):
            history.best_score, history.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1

    @property
    def stop(self) -> bool:
        return self.validate is not None and self.bad_epochs >= self.patience
