"""Source-free adaptation, SHOT (Liang et al., ICML 2020): only the source-trained model and
unlabelled target inputs; no source sample is ever seen. The classifier (head) is frozen, so the source
hypothesis stays; the trunk learns target features that the head classifies confidently (low mean
entropy) and diversely (high entropy of the mean prediction: not everything in one class), and that
match self-supervised pseudo-labels from class centroids in feature space."""
from __future__ import annotations

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


def fit_source_free(model: TrunkHead, task: Task, target: Any, config: TrainConfig | None = None,
                    pseudo_weight: float = 0.3, target_test: Any = None) -> History:
    """Adapt a source-trained `model` to unlabelled `target` inputs without any source data (SHOT).
    The head is frozen during the run (and unfrozen after); the trunk minimises the information
    maximisation loss plus `pseudo_weight` times the cross-entropy against centroid pseudo-labels,
    refreshed every epoch. No label of any kind is read for selection: the last epoch is kept.
    `target_test`: labelled target data only to report accuracy in the history."""
    config = config or TrainConfig()
    if not isinstance(model, TrunkHead):
        raise TaskshareError(f"source-free adaptation needs a trunk + head model (TrunkHead), got {type(model).__name__}")
    if task.kind != "multiclass":
        raise TaskshareError(f"source-free adaptation (SHOT) reads class predictions; task {task.name!r} is "
                             f"{task.kind}, expected multiclass")
    x = target_inputs(target)
    device = resolve_device(config.device)
    model.to(device)
    pseudo = PseudoLabels(len(x))
    pseudo.refresh(model, x, device)
    loader = make_loader(to_dataset((x, torch.arange(len(x))), "target data"), config.batch_size, shuffle=True,
                         seed=config.seed)
    test_ds = to_dataset(target_test, "target test data") if target_test is not None else None

    def objective(m: nn.Module, xb, index):
        logits = m(xb)
        loss = information_maximization(logits)
        if pseudo_weight:
            loss = loss + pseudo_weight * F.cross_entropy(logits.float(), pseudo.labels[index.cpu()].to(logits.device))
        return loss, {"shot": loss}

    def validate(m: nn.Module):      # no labels: the epoch count is the score, so the last epoch is kept
        metrics = {f"target_{k}": v for k, v in evaluate(m, task, test_ds, device).items()} if test_ds else {}
        return float(pseudo.epochs + 1), metrics

    def refresh(record: dict) -> None:
        pseudo.refresh(model, x, device)
        pseudo.epochs += 1

    frozen = [p for p in model.head.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        params = [{"params": [p for p in model.trunk.parameters() if p.requires_grad], "lr": config.lr}]
        options = LoopOptions(True, params, callbacks=[refresh], label="adapt shot (source-free)", metric="epoch")
        return train_loop(model, loader, objective, validate, config, options, LoopHooks(state={"pseudo_labels": pseudo}))
    finally:
        for p in frozen:
            p.requires_grad_(True)
