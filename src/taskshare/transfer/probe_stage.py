"""A head-only stage solved exactly (transfer/convex_probe.py) instead of trained by SGD, where that
gives the same model class: the trunk frozen and deterministic, the head one nn.Linear."""
from __future__ import annotations

import logging
import time

import torch
from torch import nn

from ..data import Splits
from ..models import TrunkHead
from ..tasks import Task
from .base import Stage
from .convex_probe import ConvexProbeConfig, solve_probe
from .features import FeatureCache, compute_features

log = logging.getLogger("taskshare")
# Above this many bytes of float64 training features the exact solve is said to be memory-bound: it holds
# them, and a few working copies, in memory (BENCHMARKS.md's own_data_scale: 96,000 x 1,280 features,
# about 1 GB in float64, peaked near 6 GB of heap), where the SGD probe streams them from the disk cache.
LARGE_FEATURES_BYTES = 1 << 30

SOLVERS = ("convex", "sgd")


def convex_blocker(model: TrunkHead, stage: Stage, trains_head_only: bool, augment, train_frozen_bn: bool,
                   penalty) -> str | None:
    """Why this stage cannot be solved exactly (None: it can)."""
    if not trains_head_only or stage.only is not None:
        return "the stage trains more than the head"
    if augment is not None:
        return "inputs are augmented, so the trunk's features change every epoch"
    if train_frozen_bn:
        return "BatchNorm statistics keep training, so the trunk's features change"
    if penalty is not None:
        return "the stage adds a penalty the solver does not know"
    if not isinstance(model.head, nn.Linear):
        return f"the head is a {type(model.head).__name__}, not a single nn.Linear"
    return None


def _features(model: TrunkHead, dataset, cache: FeatureCache | None, device: torch.device):
    return cache.get(dataset) if cache is not None else compute_features(model.trunk, dataset, device)


def run_convex_stage(model: TrunkHead, task: Task, splits: Splits, stage: Stage, cache: FeatureCache | None,
                     device: torch.device, config: ConvexProbeConfig | None = None) -> dict:
    """Solve the head on the trunk's features (the cache's, or computed now), write it into
    model.head, and return the stage record with what the solve did."""
    started = time.perf_counter()
    train = _features(model, splits.train, cache, device)
    val = _features(model, splits.val, cache, device) if splits.val is not None and len(splits.val) else None
    _warn_if_large(train.x)
    solution = solve_probe(task, train.x, train.y, val.x if val is not None else None,
                           val.y if val is not None else None, config, like=model.head)
    with torch.no_grad():
        model.head.weight.copy_(solution.head.weight)
        model.head.bias.copy_(solution.head.bias)
        # the score the runner compares is the folded head's on raw features, as evaluation will see it
        score = task.metrics(model.head(val.x.to(model.head.weight.device)).float(), val.y)[task.main_metric] \
            if val is not None and task.known(task.prepare_target(val.y)).any() else float("nan")
    return {"stage": stage.name, "epochs": 0, "best_epoch": -1, "val_score": score,
            "seconds": time.perf_counter() - started, "history": [], **solution.record()}


def _warn_if_large(x) -> None:
    """Say so when the exact solve will hold gigabytes: the features in float64 and copies of them."""
    size = int(x.numel()) * 8
    if size > LARGE_FEATURES_BYTES:
        log.warning("convex probe: %d x %d training features take %.1f GB in float64, and the solve holds a few "
                    "copies of them in memory; if memory runs short, {name: linear_probe, solver: sgd} "
                    "streams them from the disk cache instead", x.shape[0], x[0].numel(), size / 1e9)
