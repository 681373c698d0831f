"""Run a strategy on a pretrained TrunkHead, and compare several against the scratch baseline."""
from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..data import Splits, labels_of
from ..errors import TaskshareError
from ..models import TrunkHead, freeze, param_groups, reinitialize, unfreeze
from ..tasks import Task
from ..train.config import under
from ..train.epoch_end import ends_below
from ..train import TrainConfig, evaluate, fit, resolve_device
from .auto import Auto
from .base import STRATEGIES, DataFacts, Stage, Strategy
from .features import FeatureCache
from .batchnorm import check_policy, held_statistics, holds, stage_steps
from .head_temper import temper_head, tempers
from .probe_stage import convex_blocker, run_convex_stage

log = logging.getLogger("taskshare")


@dataclass
class TransferResult:
    strategy: str                 # label with hyperparameters, e.g. finetune(trunk_lr_scale=1.0)
    seed: int
    labels_per_class: int | str | None
    test: dict[str, float]
    val_score: float
    seconds: float
    epochs: int
    cached: bool = False
    note: str = ""
    stages: list[dict] = field(default_factory=list)
    steps: int = 0                # optimizer steps over all stages: the budget this run used

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def new_cache(pretrained: TrunkHead, config: TrainConfig) -> FeatureCache:
    """A feature cache over a frozen copy of the pretrained trunk."""
    return FeatureCache(copy.deepcopy(pretrained.trunk), resolve_device(config.device), config.eval_batch_size)


def build_strategy(spec: str | dict | Strategy) -> Strategy:
    """A strategy from a name, a {name: ..., hyperparameter: ...} dict, or an instance."""
    return STRATEGIES.build(spec)


def data_facts(task: Task, splits: Splits, source_size: int | None = None, augmented: bool = False) -> DataFacts:
    facts = DataFacts(train_size=len(splits.train), source_size=source_size, augmented=augmented)
    if task.kind == "multiclass":
        counts = _class_counts(splits.train, task)
        facts.num_classes = int((counts > 0).sum())
        facts.labels_per_class = int(counts[counts > 0].min()) if counts.sum() else 0
        val_counts = _class_counts(splits.val, task)
        facts.val_labels_per_class = int(val_counts[counts > 0].min()) if counts.sum() else 0
    return facts


def _class_counts(dataset, task: Task) -> Tensor:
    y = labels_of(dataset).reshape(-1)
    return torch.bincount(y[y >= 0].long(), minlength=task.out_dim)


def check_training_data(task: Task, splits: Splits) -> None:
    """Fail early on labels that do not fit the task, and on empty or single-class training sets."""
    y = labels_of(splits.train)
    task.check_labels(y, "training data")
    task.check_labels(labels_of(splits.val), "validation data")
    if task.kind == "multiclass":
        known = y[y >= 0]
        if len(known) == 0:
            raise TaskshareError(f"task {task.name!r}: the training set has no known label")
        if len(torch.unique(known)) < 2:
            raise TaskshareError(f"task {task.name!r}: the training set has a single class ({int(known[0])}); "
                                 f"expected examples of at least 2 classes")
    from ..validate import check_training_labels
    check_training_labels(task, y, "training data")       # every class of the new head seen in training


def stage_param_groups(groups, stage: Stage, config: TrainConfig) -> list[dict]:
    """The optimizer's groups for a stage: every layer group at its learning rate, with the config's
    weight decay except where the stage lowers it (a penalty that already regularises those weights)."""
    pg = param_groups(groups, config.lr, stage.lr_scales or [1.0] * len(groups), config.weight_decay)
    for g in pg:
        override = stage.head_weight_decay if g["group"] == "head" else stage.trunk_weight_decay
        if override is not None:
            g["weight_decay"] = min(g["weight_decay"], override)
    return pg


def _run_stage(model: TrunkHead, task: Task, splits: Splits, stage: Stage, config: TrainConfig,
               cache: FeatureCache | None, augment, train_frozen_bn: bool,
               bn_statistics: str = "auto") -> tuple[dict, bool]:
    if stage.prepare is not None:
        stage.prepare(model)
    tempered = temper_head(model.head, task) if tempers(stage.temper_head, model.trunk) else 1.0
    groups = model.groups()
    n = len(groups)
    k = n if stage.train_last is None else stage.train_last
    unfreeze(model, groups[n - k:])
    freeze(model, groups[:n - k], train_bn=train_frozen_bn)
    if stage.only is not None:
        rx = re.compile(stage.only)
        for name, p in model.trunk.named_parameters():
            if not rx.search(name):
                p.requires_grad_(False)
    model.train_frozen_bn = train_frozen_bn
    pg = stage_param_groups(groups, stage, config)
    stage_config = replace(config, epochs=max(1, round(config.epochs * stage.epochs_fraction)))
    penalty = stage.penalty(model) if stage.penalty else None
    use_cache = k == 1 and stage.only is None and cache is not None and augment is None and penalty is None and not train_frozen_bn
    if k == 1 and augment is not None:
        log.info("feature cache off for stage %r: inputs are augmented, so trunk features change every epoch", stage.name)
    if stage.solver == "convex":
        why = convex_blocker(model, stage, k == 1, augment, train_frozen_bn, penalty)
        if why is None:
            return run_convex_stage(model, task, splits, stage, cache, resolve_device(config.device)), cache is not None
        log.info("stage %r: trained by SGD, not solved exactly: %s", stage.name, why)
    if use_cache:
        history = fit(model.head, task, cache.get(splits.train), cache.get(splits.val), stage_config, pg)
        held = False
    else:
        steps = stage_steps(len(splits.train), stage_config.batch_size, stage_config.epochs,
                            stage_config.min_steps, stage_config.accumulate)
        held = (k > 1 or stage.only is not None) and holds(bn_statistics, steps)
        with held_statistics(model.trunk, held):
            history = fit(model, task, splits.train, splits.val, stage_config, pg, penalty=penalty, augment=augment)
    return {"stage": stage.name, "epochs": len(history.epochs), "best_epoch": history.best_epoch,
            "val_score": history.best_score, "seconds": history.seconds, "history": history.epochs,
            "bn_statistics_held": held, **({"head_tempered": tempered} if tempered != 1.0 else {})}, use_cache


def run_strategy(pretrained: TrunkHead, task: Task, splits: Splits, strategy: str | dict | Strategy,
                 config: TrainConfig | None = None, source_size: int | None = None,
                 augment: Callable[[Tensor], Tensor] | None = None, cache: FeatureCache | bool = True,
                 labels_per_class: int | str | None = None, train_frozen_bn: bool = False,
                 bn_statistics: str = "auto") -> tuple[TrunkHead, TransferResult]:
    """Train a copy of `pretrained` on `task` with one strategy; returns the model and its result.

    Model selection uses `splits.val` only; `splits.test` (if any) is evaluated once at the end.
    The head is redrawn from config.seed, so a result depends on the seed, the trunk and the data only.
    cache: True builds a feature cache for probing stages; a FeatureCache shares one across calls.
    train_frozen_bn: BatchNorm statistics in frozen groups keep updating (default: frozen, eval mode).
    bn_statistics: in stages that train the trunk, "hold" keeps the pretrained BatchNorm statistics,
    "train" updates them, "auto" holds them in stages under 100 optimizer steps (transfer/batchnorm.py).
    The budget (config.epochs, config.min_steps) is the strategy's in total, shared by its stages in
    proportion to their epochs_fraction, so every strategy and scratch get the same one.
    """
    config = config or TrainConfig()
    strategy = build_strategy(strategy)
    check_policy(bn_statistics)
    check_training_data(task, splits)
    facts = data_facts(task, splits, source_size, augment is not None)
    started = time.perf_counter()
    if isinstance(strategy, Auto) and strategy.should_sweep(facts):
        from .auto_run import choose
        return choose(pretrained, task, splits, strategy, config, facts, augment, cache, labels_per_class,
                      train_frozen_bn, started)
    chosen, note = strategy.resolve(facts)
    model, stages, used_cache = train_stages(pretrained, task, splits, chosen, config, facts, augment, cache,
                                             train_frozen_bn, (strategy.label(), chosen.label()), bn_statistics)
    device = resolve_device(config.device)
    test = evaluate(model, task, splits.test, device, config.eval_batch_size) if splits.test is not None else {}
    label = strategy.label() if chosen is strategy else f"{strategy.label()} -> {chosen.label()}"
    result = TransferResult(label, config.seed, labels_per_class, test, stages[-1]["val_score"],
                            time.perf_counter() - started, sum(s["epochs"] for s in stages), used_cache, note, stages,
                            steps_of(stages))
    return model, result


def steps_of(stages: list[dict]) -> int:
    """Optimizer steps over all stages (0 for a stage solved without steps)."""
    return sum(int(s["history"][-1].get("step", 0)) if s.get("history") else int(s.get("steps", 0)) for s in stages)


def train_stages(pretrained: TrunkHead, task: Task, splits: Splits, chosen: Strategy, config: TrainConfig,
                 facts: DataFacts, augment, cache: FeatureCache | bool | None, train_frozen_bn: bool,
                 names: Sequence[str], bn_statistics: str = "auto") -> tuple[TrunkHead, list[dict], bool]:
    """A copy of `pretrained` trained by `chosen`'s stages; each stage gets its share of the budget.
    A stage that ends below the validation score it started from (the previous stage's) hands on
    the weights it started with: fit keeps the best of its own epochs only, so without this a few
    noisy fine-tuning steps after LP-FT's probe would replace a better probe."""
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = copy.deepcopy(pretrained).to(device)
        if chosen.reinit:
            reinitialize(model)
        else:  # the new head starts from the seed alone, not from the caller's random state when it was made
            model.head.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
        if cache is True and not chosen.reinit:
            cache = new_cache(pretrained, config)
        stages, used_cache = [], False
        for i, stage in enumerate(_budget_shares(model, chosen.stages(len(model.groups()), facts), augment,
                                                 train_frozen_bn)):
            # The cache holds the pretrained trunk's features: valid while the trunk is untouched.
            stage_cache = cache if (i == 0 and not chosen.reinit and isinstance(cache, FeatureCache)) else None
            # min_steps is the whole strategy's floor, not each stage's: a two-stage strategy would
            # otherwise train up to twice as many steps as a one-stage one (or scratch)
            share = replace(under(config, *names, f"stage{i}"),
                            min_steps=round(config.min_steps * stage.epochs_fraction))
            start = _start_point(model, stages, splits)
            record, cached = _run_stage(model, task, splits, stage, share, stage_cache, augment, train_frozen_bn,
                                        bn_statistics)
            if start is not None and ends_below(record["val_score"], start[0], task.higher_is_better):
                model.load_state_dict(start[1])
                record.update(kept_start=True, val_score=start[0])
            stages.append(record)
            used_cache |= cached
        unfreeze(model)
        model.train_frozen_bn = False
    return model, stages, used_cache


def _start_point(model: TrunkHead, stages: list[dict], splits: Splits) -> tuple[float, dict] | None:
    """The previous stage's validation score and a copy of the weights it left (None for a first stage
    or without a score): every stage records its best validation score for the weights it keeps."""
    if not stages or splits.val is None or not len(splits.val):
        return None
    score = stages[-1]["val_score"]
    return None if score != score else (float(score), copy.deepcopy(model.state_dict()))


def _budget_shares(model: TrunkHead, stages: list[Stage], augment, train_frozen_bn: bool) -> list[Stage]:
    """The stages with their budget shares: a stage solved exactly (the convex probe) takes no
    optimizer steps, so the stages trained by SGD share the whole budget (LP-FT's fine-tuning gets
    what a plain fine-tune gets, not half of it)."""
    n = len(model.groups())
    exact = [s.solver == "convex" and s.prepare is None and s.penalty is None
             and convex_blocker(model, s, (n if s.train_last is None else s.train_last) == 1, augment,
                                train_frozen_bn, None) is None for s in stages]
    sgd_total = sum(s.epochs_fraction for s, e in zip(stages, exact) if not e)
    if not any(exact) or sgd_total <= 0:
        return stages
    return [s if e else replace(s, epochs_fraction=s.epochs_fraction / sgd_total) for s, e in zip(stages, exact)]


def compare(pretrained: TrunkHead, task: Task, splits: Splits, strategies: Sequence[str | dict | Strategy],
            config: TrainConfig | None = None, source_size: int | None = None,
            labels_per_class: int | str | None = None, augment=None, train_frozen_bn: bool = False,
            on_model: Callable[[TrunkHead, TransferResult], None] | None = None) -> list[TransferResult]:
    """Every strategy on the same data, the scratch baseline always among them. `on_model` sees each
    trained model with its result (to save or inspect it) before the next strategy starts."""
    config = config or TrainConfig()
    built = [build_strategy(s) for s in strategies]
    if not any(s.reinit for s in built):
        built.insert(0, STRATEGIES.get("scratch")())
    cache = new_cache(pretrained, config)
    results = []
    for s in built:
        model, result = run_strategy(pretrained, task, splits, s, config, source_size, augment, cache,
                                     labels_per_class, train_frozen_bn)
        if on_model is not None:
            on_model(model, result)
        results.append(result)
    return results
