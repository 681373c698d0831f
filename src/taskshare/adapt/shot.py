"""Source-free adaptation, SHOT (Liang et al., ICML 2020): only the source-trained model and
unlabelled target inputs; no source sample is ever seen. The classifier (head) is frozen, so the source
hypothesis stays; the trunk learns target features that the head classifies confidently (low mean
entropy) and diversely (high entropy of the mean prediction: not everything in one class), and that
match self-supervised pseudo-labels from class centroids in feature space.

SHOT trusts the source model: its pseudo-labels start from the source model's target predictions, and
nothing without source data checks them. A source model that is wrong on most of its OWN validation
set is usually wrong on more of a shifted target (a shift seldom helps), so self-training reinforces
mostly wrong labels: on MNIST-1D, a source model 43.5% accurate on its own validation lost 12.5 points
to SHOT. Hence the safeguard: given the source model's source-validation accuracy (a number measured
when it was trained, shared with the weights), SHOT refuses to adapt a model that is not right on most
of its own domain and keeps the source model, with a warning that says why."""
from __future__ import annotations

import logging
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import make_loader, to_dataset
from ..errors import TaskshareError
from ..models.trunk_head import TrunkHead
from ..tasks import Task
from ..train.config import TrainConfig
from ..train.device import resolve_device
from ..train.hooks import LoopHooks
from ..train.loop import History, LoopOptions, evaluate, train_loop
from .losses import information_maximization  # noqa: F401  (re-exported: SHOT's loss)
from .train import target_inputs

log = logging.getLogger("taskshare")


def centroid_pseudo_labels(features: Tensor, logits: Tensor, rounds: int = 2) -> Tensor:
    """SHOT's pseudo-labels: class centroids weighted by the predicted probabilities, each sample
    labelled by its nearest centroid (cosine distance), then centroids from those hard labels and
    labelled again (`rounds` in all)."""
    f = F.normalize(torch.cat([features.float(), torch.ones(len(features), 1, device=features.device)], 1), dim=1)
    weights = torch.softmax(logits.float(), 1)
    labels = weights.argmax(1)
    for _ in range(rounds):
        centroids = F.normalize(weights.T @ f / weights.sum(0)[:, None].clamp_min(1e-12), dim=1)
        labels = (f @ centroids.T).argmax(1)
        weights = F.one_hot(labels, logits.shape[1]).float()
    return labels


class PseudoLabels:
    """The target's current pseudo-labels, refreshed at each epoch end; saved with run checkpoints."""

    def __init__(self, n: int):
        self.labels, self.epochs = torch.zeros(n, dtype=torch.long), 0

    @torch.no_grad()
    def refresh(self, model: TrunkHead, x: Tensor, device) -> None:
        was = model.training
        model.eval()
        feats, logits = [], []
        for i in range(0, len(x), 1024):
            f = model.trunk(x[i:i + 1024].to(device))
            feats.append(f.reshape(len(f), -1).float().cpu())
            logits.append(model.head(f).float().cpu())
        model.train(was)
        self.labels = centroid_pseudo_labels(torch.cat(feats), torch.cat(logits))

    def state_dict(self) -> dict:
        return {"labels": self.labels, "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.labels, self.epochs = state["labels"].clone(), int(state["epochs"])


def source_accuracy_floor(num_classes: int, min_source_accuracy: float | None = None) -> float:
    """The source-validation accuracy below which SHOT keeps the source model. By default (None) a
    majority right, and never less than 1.5x chance: max(0.5, 1.5 / classes) (with two classes a
    majority is chance; the same near-chance line as `check_source_score`). A number is the user's
    own line and is used as given: 0.4 on two classes is 0.4; 0 turns the check off."""
    if min_source_accuracy is None:
        return max(0.5, 1.5 / max(num_classes, 1))
    return float(min_source_accuracy)


def check_source_model(source_accuracy: float | None, num_classes: int,
                       min_source_accuracy: float | None = None) -> str | None:
    """Why SHOT should not adapt a source model with this source-validation accuracy (also logged as a
    warning), or None when it may. None as the accuracy: not checked (nothing to check it by)."""
    if source_accuracy is None:
        return None
    # a number, never data: the contract is that no source sample reaches SHOT
    if isinstance(source_accuracy, bool) or not isinstance(source_accuracy, numbers.Real) \
            or not 0.0 <= float(source_accuracy) <= 1.0:
        shown = repr(source_accuracy) if isinstance(source_accuracy, numbers.Real) else f"a {type(source_accuracy).__name__}"
        raise TaskshareError(f"source_accuracy = {shown}; expected the source model's accuracy on its "
                             f"own validation data as a fraction in [0, 1]")
    accuracy = float(source_accuracy)
    floor = source_accuracy_floor(num_classes, min_source_accuracy)
    if accuracy >= floor:
        return None
    message = (f"shot: the source model is {accuracy:.3f} accurate on its own validation data, below "
               f"{floor:.3f}; SHOT self-trains on its predictions, mostly wrong already on the source, so the "
               f"source model is kept unadapted (min_source_accuracy=0 adapts anyway)")
    log.warning(message)
    return message


def fit_source_free(model: TrunkHead, task: Task, target: Any, config: TrainConfig | None = None,
                    pseudo_weight: float = 0.3, target_test: Any = None, source_accuracy: float | None = None,
                    min_source_accuracy: float | None = None) -> History:
    """Adapt a source-trained `model` to unlabelled `target` inputs without any source data (SHOT).
    The head is frozen during the run (and unfrozen after); the trunk minimises the information
    maximisation loss plus `pseudo_weight` times the cross-entropy against centroid pseudo-labels,
    refreshed every epoch. No label of any kind is read for selection: the last epoch is kept.
    `target_test`: labelled target data only to report accuracy in the history.
    `source_accuracy`: the model's accuracy on its source validation data, measured when it was
    trained (a number, not data); below `source_accuracy_floor` (by default max(0.5, 1.5x chance); a
    `min_source_accuracy` given is used as given, 0 adapts anyway) the model is returned unchanged, a
    warning is logged and the history's `warning` says why (one record, epoch 0, no training). Without
    it nothing is checked and the history's `note` says so."""
    config = config or TrainConfig()
    _check_shot_arguments(model, task, min_source_accuracy)
    x = target_inputs(target)
    device = resolve_device(config.device)
    model.to(device)
    test_ds = to_dataset(target_test, "target test data") if target_test is not None else None
    refusal = check_source_model(source_accuracy, task.out_dim, min_source_accuracy)
    if refusal:
        return _kept_source_model(model, task, test_ds, device, refusal)
    pseudo = PseudoLabels(len(x))
    pseudo.refresh(model, x, device)
    loader = make_loader(to_dataset((x, torch.arange(len(x))), "target data"), config.batch_size, shuffle=True,
                         seed=config.seed)

    def validate(m: nn.Module):      # no labels: the epoch count is the score, so the last epoch is kept
        metrics = {f"target_{k}": v for k, v in evaluate(m, task, test_ds, device).items()} if test_ds else {}
        return float(pseudo.epochs + 1), metrics

    def refresh(record: dict) -> None:
        pseudo.refresh(model, x, device)
        pseudo.epochs += 1

    history = _train_trunk(model, loader, _shot_objective(pseudo, pseudo_weight), validate, config, refresh,
                           LoopHooks(state={"pseudo_labels": pseudo}))
    if source_accuracy is None:     # a note, not a warning: a model from elsewhere is SHOT's usual case
        history.note = ("shot: the source model's source-validation accuracy was not given "  # type: ignore[attr-defined]
                        "(source_accuracy=), so whether it is good enough to self-train on was not checked")
    return history


def _check_shot_arguments(model: Any, task: Task, min_source_accuracy: Any) -> None:
    if not isinstance(model, TrunkHead):
        raise TaskshareError(f"source-free adaptation needs a trunk + head model (TrunkHead), got {type(model).__name__}")
    if task.kind != "multiclass":
        raise TaskshareError(f"source-free adaptation (SHOT) reads class predictions; task {task.name!r} is "
                             f"{task.kind}, expected multiclass")
    if min_source_accuracy is not None and (isinstance(min_source_accuracy, bool)
                                            or not isinstance(min_source_accuracy, numbers.Real)
                                            or not 0.0 <= float(min_source_accuracy) <= 1.0):
        raise TaskshareError(f"min_source_accuracy = {min_source_accuracy!r}; expected a fraction in [0, 1], or None "
                             f"for the default, max(0.5, 1.5x chance)")


def _shot_objective(pseudo: PseudoLabels, pseudo_weight: float):
    """SHOT's per-step loss on a batch of target inputs and their indices (for the pseudo-labels)."""

    def objective(m: nn.Module, xb, index):
        logits = m(xb)
        loss = information_maximization(logits)
        if pseudo_weight:
            loss = loss + pseudo_weight * F.cross_entropy(logits.float(), pseudo.labels[index.cpu()].to(logits.device))
        return loss, {"shot": loss}

    return objective


def _train_trunk(model: TrunkHead, loader, objective, validate, config: TrainConfig, epoch_end,
                 hooks: LoopHooks) -> History:
    """The loop over the trunk's parameters alone, `epoch_end` called after every epoch: the head is
    frozen for the run (the source hypothesis stays) and whatever of it trained before trains again
    after, even if the run fails."""
    frozen = [p for p in model.head.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        params = [{"params": [p for p in model.trunk.parameters() if p.requires_grad], "lr": config.lr}]
        options = LoopOptions(True, params, callbacks=[epoch_end], label="adapt shot (source-free)", metric="epoch")
        return train_loop(model, loader, objective, validate, config, options, hooks)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _kept_source_model(model: TrunkHead, task: Task, test_ds, device, message: str) -> History:
    """The history of a run that did not adapt: one record (epoch 0, no step) with the source model's
    target metrics when labelled target test data were given, kept as the best epoch."""
    metrics = {f"val_target_{k}": v for k, v in evaluate(model, task, test_ds, device).items()} if test_ds else {}
    history = History(epochs=[{"epoch": 0, "step": 0, "kept_source_model": True, **metrics}], best_epoch=0)
    history.warning = message       # type: ignore[attr-defined]
    return history
