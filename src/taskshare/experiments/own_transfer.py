"""Transfer on your own data: the target read from its source, the pretrained model from its family
(or a built-in pretrained on the source), every strategy against scratch, the reports, and the
deployable model with what using it needs (run.json)."""
from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..config import to_dict
from ..data.augment import build_augment
from .kept import Trained, choose_kept, contenders
from .own import (OwnExperiment, Target, encoded_with, few_shot_splits, input_info, model_size, pretrain_builtin,
                  read_target, with_cache_note)
from ..models.backbones.spec import preprocessing_of
from ..serve.bundle import write_bundle
from ..serve.models import transfer_net
from ..tasks import Task
from ..train import resolve_device
from ..train.config import under
from ..transfer import STRATEGIES
from ..transfer.features import FeatureCache
from ..transfer.run import build_strategy, run_strategy
from .transfer import print_row, result_row


def _cache(config: OwnExperiment, base, out: Path):
    trunk = copy.deepcopy(base.trunk)
    device = resolve_device(config.transfer.train.device)
    if config.feature_cache == "disk":
        from ..transfer.disk_cache import DiskFeatureCache
        return DiskFeatureCache(trunk, device, out / "features", config.transfer.train.eval_batch_size)
    return FeatureCache(trunk, device, config.transfer.train.eval_batch_size)


def run_own_transfer(config: OwnExperiment, out: Path, console) -> int:
    from ..evaluate import summarize
    from ..evaluate.report.transfer import print_summary, write_reports
    started = time.perf_counter()
    backbone, size = model_size(config)
    target = read_target(config, size)   # checked before the source is pretrained
    source_net, record = None, {"mode": "transfer", "model": config.model.to_config()}
    if backbone is None:
        source_net, source_info, record["source_outputs"] = pretrain_builtin(config, size, console, target.data)
        if source_info["kind"] == "table":   # the network learnt the source's scaling and categories
            target = encoded_with(target, source_info["encoding"])
    else:
        record["preprocessing"] = preprocessing_of(backbone)
    data, task, train_ds, test_ds = _target(config, target, getattr(backbone, "tokenizer", None), record, console)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = transfer_net(record, task, source_net, pretrained=True) if backbone is None else backbone.with_head(task)
    rows, deploy = _every_strategy(config, base, task, data, train_ds, test_ds, out, console)
    summary = summarize(rows)
    title = f"{config.model.label}: transfer to {Path(data.origin).name}"
    print_summary(console, summary, title)
    paths = write_reports(out, rows, summary, title, {"config": to_dict(config)})
    kept, why = choose_kept(deploy, task.higher_is_better)
    shot, seed = config.transfer.shots[-1], config.transfer.seeds[0]
    record.update(tasks=[{**task.describe(), "class_names": data.class_names[task.name]}],
                  strategy=kept.result.strategy, val_score=kept.result.val_score, test=kept.result.test,
                  labels_per_class=shot, kept={"strategy": kept.result.strategy, "labels_per_class": shot,
                                               "seed": seed, "why": why})
    write_bundle(out, kept.model, record)
    console.print(f"kept {kept.result.strategy} (k={shot}, seed {seed}): {why} -> {out / 'model.safetensors'}; "
                  f"use it with 'taskshare predict {out} INPUTS'", highlight=False, soft_wrap=True)
    console.print(f"done in {time.perf_counter() - started:.0f}s; report: {paths['md']} and {paths['html']}")
    return 0


def _target(config: OwnExperiment, target: Target, tokenizer, record: dict, console):
    """The checked target's task and its train and test datasets (the input's record goes into `record`)."""
    data, train_data, test_data, task_name = target.data, target.train, target.test, target.task
    names = data.class_names[task_name]
    record["input"] = input_info(data, tokenizer)
    console.print(f"target {data.origin}: {len(train_data)} training / {len(test_data)} test examples, "
                  f"{len(names)} classes ({', '.join(names[:8])}{' ...' if len(names) > 8 else ''})"
                  + (f"; {len(data.skipped)} unreadable file(s) skipped" if data.skipped else ""))
    return (data, Task(task_name, "multiclass", num_classes=len(names)),
            train_data.dataset(task_name, tokenizer, config.num_workers),
            test_data.dataset(task_name, tokenizer, config.num_workers))


def _every_strategy(config: OwnExperiment, base, task: Task, data, train_ds, test_ds, out: Path, console):
    """Every strategy (and scratch) at every shot and seed; returns the result rows and the runs at the
    last shot, first seed, from which kept.py chooses the model to deploy."""
    size_hw = tuple(data.encoding["size"]) if data.kind == "image" else None
    augment = build_augment(config.augment, size_hw, data.kind)
    with_cache_note(config, augment)
    cache = _cache(config, base, out) if augment is None else None
    strategies = [build_strategy(s) for s in config.transfer.strategies]
    if not any(s.reinit for s in strategies):
        strategies.insert(0, STRATEGIES.get("scratch")())
    rows, deploy = [], []
    for shot in config.transfer.shots:
        for seed in config.transfer.seeds:
            splits = few_shot_splits(train_ds, test_ds, shot, seed, config.transfer.val_per_class)
            train_cfg = under(replace_seed(config.transfer.train, seed), f"k{shot}-seed{seed}")
            for strategy in strategies:
                model, result = run_strategy(base, task, splits, strategy, train_cfg, None, augment,
                                             cache if cache is not None else False, shot, config.transfer.train_frozen_bn)
                rows.append(result_row(result))
                print_row(console, rows[-1])
                if shot == config.transfer.shots[-1] and seed == config.transfer.seeds[0]:
                    deploy = contenders(deploy + [Trained(strategy, model, result)], task.higher_is_better)
    if hasattr(cache, "close"):
        cache.close()
    return rows, deploy


def replace_seed(train, seed: int):
    return replace(train, seed=seed)
