"""How `auto` gathers its evidence: one validation split where it is large enough to trust, repeated
stratified cross-validation over train + validation where it is not."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from ..data import ArrayDataset, Splits, labels_of
from ..tasks import Task
from ..train import TrainConfig, evaluate, resolve_device
from ..train.loop import predict
from ..train.config import under
from .auto import Auto
from .base import DataFacts, Strategy
from .evidence import Paired, decide, stratified_folds


def choose(pretrained, task: Task, splits: Splits, auto: Auto, config: TrainConfig, facts: DataFacts, augment,
           cache, labels_per_class, train_frozen_bn: bool, started: float):
    from .run import new_cache
    if cache is True:
        cache = new_cache(pretrained, config)
    if auto.cross_validates(facts):
        pool = pool_of(splits.train, splits.val)
        y = labels_of(pool).reshape(-1).numpy()
        counts = np.bincount(y[y >= 0])
        folds = min(auto.folds, int(counts[counts > 0].min()))
        if folds >= 2:
            return _cross_validate(pretrained, task, splits, pool, y, folds, auto, config, facts, augment, cache,
                                   labels_per_class, train_frozen_bn, started)
    return _sweep(pretrained, task, splits, auto, config, facts, augment, cache, labels_per_class, train_frozen_bn,
                  started)


def pool_of(train: Dataset, val: Dataset) -> Dataset:
    """Train and validation as one labelled set (arrays stay arrays: cheap subsets, fast loaders)."""
    if isinstance(train, ArrayDataset) and isinstance(val, ArrayDataset):
        out = ArrayDataset.__new__(ArrayDataset)
        out.x, out.y = torch.cat([train.x, val.x]), torch.cat([train.y, val.y])
        return out
    return ConcatDataset([train, val])


def _subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    return dataset.subset(indices) if isinstance(dataset, ArrayDataset) else Subset(dataset, indices.tolist())


def _sweep(pretrained, task, splits, auto: Auto, config, facts, augment, cache, labels_per_class, train_frozen_bn,
           started):
    """Validation large enough: every candidate trains once. For classes, the decision reads paired
    per-example correctness on the validation split (so a candidate clearly below scratch is refused
    and a tie with scratch keeps scratch); otherwise the best validation score is kept."""
    from .run import run_strategy
    rule_choice, reason = auto.resolve(facts)
    runs = [run_strategy(pretrained, task, splits, candidate, under(config, auto.label()), facts.source_size, augment,
                         cache, labels_per_class, train_frozen_bn) for candidate in auto.candidates(facts)]
    sign = 1 if task.higher_is_better else -1
    labels = [r.strategy for _, r in runs]
    if task.kind == "multiclass" and task.main_metric == "accuracy" and "scratch" in labels:
        device = resolve_device(config.device)
        correct = {}
        for model, r in runs:
            out, y = predict(model, splits.val, device, config.eval_batch_size)
            known = y >= 0
            correct[r.strategy] = (out.argmax(1) == y)[known].float().tolist()
        decision = decide(correct, rule_choice.label(), "scratch", True)
        model, best = runs[labels.index(decision.choice)]
        evidence = f"paired over its examples: {decision.note}"
    else:
        model, best = max(runs, key=lambda run: sign * run[1].val_score)
        scores = ", ".join(f"{r.strategy} {r.val_score:.4f}" for _, r in runs)
        evidence = f"{scores}; kept {best.strategy}, the best on validation"
    best.note = (f"one validation split ({len(splits.val)} examples, {facts.val_labels_per_class} labels per "
                 f"class), {len(runs)} trainings; {evidence}. The size rule alone would say "
                 f"{rule_choice.label()} ({reason})")
    best.strategy = f"{auto.label()} -> {best.strategy}"
    best.seconds = time.perf_counter() - started
    return model, best


def _cross_validate(pretrained, task, splits, pool, y, folds: int, auto: Auto, config, facts, augment, cache,
                    labels_per_class, train_frozen_bn, started):
    """Score candidates on repeated stratified folds of train + validation, decide, then train the
    choice on all of it."""
    from .run import TransferResult, run_strategy, steps_of, train_stages
    candidates: dict[str, Strategy] = {c.label(): c for c in auto.candidates(facts)}
    prior = auto.resolve(facts)[0].label()
    scores: dict[str, list[float]] = {name: [] for name in candidates}
    alive, trainings, sign = list(candidates), 0, 1 if task.higher_is_better else -1
    decision = None
    for repeat in range(auto.repeats):
        for j, held in enumerate(stratified_folds(y, folds, seed=config.seed * 7919 + repeat)):
            keep = np.setdiff1d(np.arange(len(y)), held)
            fold = Splits(_subset(pool, keep), _subset(pool, held))
            for name in alive:
                _, r = run_strategy(pretrained, task, fold, candidates[name],
                                    under(config, auto.label(), f"cv{repeat}_{j}"), facts.source_size, augment,
                                    cache, None, train_frozen_bn)
                scores[name].append(r.val_score)
                trainings += 1
        decision = decide({n: scores[n] for n in candidates}, prior, "scratch", task.higher_is_better)
        gap = Paired.of(scores[decision.choice], scores["scratch"])
        if (decision.choice == "scratch" and len(decision.ties) == 1) or gap.mean * sign - gap.se > 0:
            break   # settled against the baseline; ties among transfer candidates the rule may break
        # transfer is not yet clearly ahead of scratch: more folds, only for what is still in contention
        alive = [n for n in candidates if n in decision.ties or n == "scratch"]
    # the choice retrains on everything the decision saw; with no data left to stop early on, it gets
    # the comparison's whole budget (the folds' best epochs are too noisy to reuse: on a dozen
    # validation labels accuracy plateaus within a step or two)
    final = Splits(pool, None, splits.test)  # type: ignore[arg-type]
    model, stages, _ = train_stages(pretrained, task, final, candidates[decision.choice], config,
                                    replace(facts, train_size=len(pool)), augment, None, train_frozen_bn,
                                    (auto.label(), decision.choice, "final"))
    test = (evaluate(model, task, splits.test, resolve_device(config.device), config.eval_batch_size)
            if splits.test is not None else {})
    note = (f"{folds}-fold cross-validation over train + validation ({len(y)} labels), "
            f"{len(scores['scratch']) // folds} repeat(s), {trainings} trainings: {decision.note}. Then trained on "
            f"all {len(y)} labels with the full budget ({steps_of(stages)} steps). The size rule alone would say {prior}")
    result = TransferResult(f"{auto.label()} -> {decision.choice}", config.seed, labels_per_class, test,
                            float(np.mean(scores[decision.choice])), time.perf_counter() - started,
                            sum(s["epochs"] for s in stages), False, note, stages, steps_of(stages))
    return model, result
