"""The pretrain-then-transfer experiment behind `taskshare run|pretrain|transfer|demo` (mode: transfer).

Source task A and target task B come from data specs (the built-in MNIST-1D generator or an .npz
file); a model from the zoo is pretrained on A, its head cut, and every strategy is run on B at each
number of labels per class and seed, against the scratch baseline.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import from_dict, load_yaml, to_dict, typed
from ..data import Splits, few_shot, split
from ..errors import ConfigError, TaskshareError
from ..io import atomic_write_bytes, safe_name
from ..models import transfer_model
from ..tasks import Task
from ..train import TrainConfig, evaluate, fit, load_into, read_meta, save
from ..train.config import under
from ..transfer import compare
from .kept import Candidate, replaces
from .modes import RUNNERS
from .preflight import check_shots
from .runs import guard, resumable, track
from .specs import DataSpec, ModelSpec
from .task_data import TaskData, load_task_data

log = logging.getLogger("taskshare")


@dataclass
@typed()
class PretrainSpec:
    checkpoint: str | None = None     # load these weights instead of training on the source
    val_fraction: float = 0.1
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, lr=1e-3))


@dataclass
@typed()
class TransferSpec:
    strategies: list[Any] = field(default_factory=lambda: [
        "scratch", "linear_probe", {"name": "last_k", "k": 1}, {"name": "finetune", "trunk_lr_scale": 1.0},
        "finetune", "layer_decay", "gradual_unfreeze", "lp_ft", "l2_sp", "auto"])
    shots: list[Any] = field(default_factory=lambda: [5, 20, 100, "all"])  # labels per class, or "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    val_per_class: int | None = None  # validation examples per class (default: as many as for training)
    train_frozen_bn: bool = False     # BatchNorm statistics in frozen layers keep updating (no feature cache)
    save_models: str = "best"         # best: per shot and seed, the model best on validation | all | none
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=40, lr=1e-3))


@dataclass
@typed()
class ExperimentConfig:
    source: DataSpec = field(default_factory=lambda: DataSpec(builtin="mnist1d", classes=[0, 1, 2, 3, 4]))
    target: DataSpec = field(default_factory=lambda: DataSpec(builtin="mnist1d", classes=[5, 6, 7, 8, 9]))
    model: ModelSpec = field(default_factory=ModelSpec)
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)
    transfer: TransferSpec = field(default_factory=TransferSpec)
    output: str = "runs/experiment"
    track: dict[str, Any] = field(default_factory=dict)   # {tensorboard: DIR, mlflow: URI}: log the run there

    def __post_init__(self) -> None:
        check_shots(self.transfer.shots)
        for name, spec in (("source", self.source), ("target", self.target)):
            if (spec.builtin is None) == (spec.npz is None):
                raise ConfigError.at(name, ": give exactly one of 'builtin' (mnist1d) or 'npz' (a file path)")
            if spec.builtin is not None and spec.builtin != "mnist1d":
                raise ConfigError.at(f"{name}.builtin", f" = {spec.builtin!r}; expected 'mnist1d'")
        if self.transfer.save_models not in ("best", "all", "none"):
            raise ConfigError.at("transfer.save_models", f" = {self.transfer.save_models!r}; expected best, all or none")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    data = load_yaml(path)
    data.update(overrides or {})
    return from_dict(ExperimentConfig, data, "config")


def pretrain(config: ExperimentConfig, source: TaskData, out_dir: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Train the configured model on the source task (or load its checkpoint); returns it with its
    source test metrics."""
    if config.pretrain.checkpoint:
        return load_pretrained(config, config.pretrain.checkpoint)
    task = Task("source", "multiclass", num_classes=source.num_classes)
    splits = split((source.x, source.y), config.pretrain.val_fraction, test=(source.x_test, source.y_test),
                   seed=config.pretrain.train.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.pretrain.train.seed)
        model = config.model.build(source.x.shape[1], task.out_dim)
        fit(model, task, splits.train, splits.val, under(config.pretrain.train, "pretrain"))
    metrics = evaluate(model, task, splits.test)
    if out_dir is not None:
        save(out_dir / "pretrained.safetensors", model, {
            "model": {"name": config.model.name, "args": config.model.args, "in_features": int(source.x.shape[1]),
                      "num_outputs": task.out_dim},
            "task": task.describe(), "source_test": metrics, "source_size": len(source.y)})
    return model, metrics


def load_pretrained(config: ExperimentConfig, path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the configured model with the shapes recorded in the checkpoint's sidecar, then load it."""
    meta = read_meta(path)
    shapes = meta.get("model", {})
    if "in_features" not in shapes or "num_outputs" not in shapes:
        raise TaskshareError(f"{path}: its sidecar does not record the model's in_features and num_outputs")
    model = config.model.build(shapes["in_features"], shapes["num_outputs"])
    load_into(model, path)
    log.info("loaded pretrained weights from %s", path)
    return model, meta.get("source_test", {})


def transfer_all(config: ExperimentConfig, pretrained: torch.nn.Module, target: TaskData, source_size: int | None,
                 on_result: Callable[[dict], None] | None = None, out_dir: Path | None = None) -> list[dict]:
    """Every strategy at every number of labels per class and seed; returns result dicts. With
    `out_dir`, trained weights go to out_dir/models as `transfer.save_models` says."""
    task = Task("target", "multiclass", num_classes=target.num_classes)
    example = torch.as_tensor(target.x[:2])
    results = []
    per_class = np.bincount(target.y)
    for shot in config.transfer.shots:
        if shot != "all" and shot > per_class.min():
            raise TaskshareError(f"shots={shot} labels per class, but the target's smallest class has "
                                 f"{per_class.min()} training examples")
        for seed in config.transfer.seeds:
            with torch.random.fork_rng(devices=[]):     # the new head's initial weights follow the seed alone
                torch.manual_seed(seed)
                base = transfer_model(pretrained, task, example=example)
            splits: Splits = few_shot((target.x, target.y), shot, seed=seed, val_per_class=config.transfer.val_per_class,
                                      test=(target.x_test, target.y_test))
            train_cfg = under(_with_seed(config.transfer.train, seed), f"k{shot}-seed{seed}")
            saver = _model_saver(config, task, out_dir, shot, seed)
            for res in compare(base, task, splits, config.transfer.strategies, train_cfg, source_size, shot,
                               train_frozen_bn=config.transfer.train_frozen_bn, on_model=saver):
                row = result_row(res)
                results.append(row)
                if on_result:
                    on_result(row)
    return results


def result_row(result) -> dict:
    """A result as saved: each stage keeps its validation curve, not the rest of its history."""
    row = result.to_dict()
    for stage in row["stages"]:
        stage["curve"] = [e.get("val_score", float("nan")) for e in stage.pop("history", None) or []]
    return row


def _model_saver(config: ExperimentConfig, task: Task, out_dir: Path | None, shot, seed: int):
    """A callback writing transferred weights; 'best' keeps, per shot and seed, the model to deploy,
    overwriting atomically as better ones arrive, by kept.py's rule (auto's when auto ran, else the best
    validation score, a tie to the strategy that ran first and scratch last) asked of the saved model
    and each newcomer, so one model is held at a time."""
    mode = config.transfer.save_models
    if out_dir is None or mode == "none":
        return None
    saved: list[Candidate] = []      # the saved model's candidate, once one is saved

    def on_model(model, result) -> None:
        meta = {"strategy": result.strategy, "labels_per_class": shot, "seed": seed, "test": result.test,
                "val_score": result.val_score, "task": task.describe(), "source_model": to_dict(config.model)}
        if mode == "all":
            name = safe_name(result.strategy)
            save(out_dir / "models" / f"k{shot}_seed{seed}_{name}.safetensors", model, meta)
            return
        # labels only here: auto's read "auto -> lp_ft", scratch's "scratch"
        candidate = Candidate(result.strategy, result.val_score, auto=result.strategy.startswith("auto"),
                              scratch=result.strategy == "scratch")
        if replaces(candidate, saved[0] if saved else None, task.higher_is_better):
            saved[:] = [candidate]
            save(out_dir / "models" / f"k{shot}_seed{seed}_best.safetensors", model, meta)

    return on_model


def _with_seed(cfg: TrainConfig, seed: int) -> TrainConfig:
    return replace(cfg, seed=seed)


@RUNNERS.register("transfer")
def run_transfer_command(args, raw: dict, console) -> int:
    """`taskshare run|pretrain|transfer CONFIG`: pretrain writes OUT/pretrained.safetensors, transfer
    continues from it (or --pretrained), run does both."""
    config = from_dict(ExperimentConfig, {k: v for k, v in raw.items() if k != "mode"}, "config")
    out = Path(args.out or config.output)
    shared = Path(args.shared_out or config.output)     # under several processes: the folder every rank reads
    if getattr(args, "resume", False):
        config = replace(config, pretrain=replace(config.pretrain, train=resumable(config.pretrain.train, shared)),
                         transfer=replace(config.transfer, train=resumable(config.transfer.train, shared)))
    guard(args, out, continues=args.command == "transfer")   # transfer continues the pretrain run's folder
    pretrained = getattr(args, "pretrained", None)
    if args.command == "transfer":
        pretrained = pretrained or config.pretrain.checkpoint or str(shared / "pretrained.safetensors")
    return run_transfer(config, out, console, args.command, pretrained)


def quick(config: ExperimentConfig) -> ExperimentConfig:
    """A small version of the demo for a first look and for tests."""
    src = replace(config.source, num_samples=6000)
    tgt = replace(config.target, num_samples=6000)
    pre = replace(config.pretrain, train=replace(config.pretrain.train, epochs=8))
    tr = replace(config.transfer, shots=[5, "all"], strategies=["scratch", "linear_probe", "finetune", "lp_ft", "auto"],
                 train=replace(config.transfer.train, epochs=10))
    return replace(config, source=src, target=tgt, pretrain=pre, transfer=tr)


def run_transfer(config: ExperimentConfig, out: Path, console, command: str, pretrained_path: str | None) -> int:
    """The whole experiment into `out`: the source model (trained, or loaded for `transfer`), every
    strategy on the target, the reports."""
    from ..evaluate import summarize
    from ..evaluate.report.transfer import print_summary, write_reports
    import yaml
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
    started = time.perf_counter()
    source = _source_model(config, out, console, command, pretrained_path)
    if source is None:
        return 0                                          # pretrain only
    model, target, source_size = source
    console.print(f"target task B: {len(target.y)} training examples, {target.num_classes} classes; "
                  f"shots {config.transfer.shots}, seeds {config.transfer.seeds}")
    rows = transfer_all(config, model, target, source_size, on_result=lambda r: print_row(console, r), out_dir=out)
    summary = summarize(rows)
    title = f"{config.model.name}: transfer A -> B"
    print_summary(console, summary, title)
    paths = write_reports(out, rows, summary, title, {"config": to_dict(config)})
    console.print(f"done in {time.perf_counter() - started:.0f}s; report: {paths['md']} and {paths['html']}")
    track(config, out)
    return 0


def _source_model(config: ExperimentConfig, out: Path, console, command: str, pretrained_path: str | None):
    """(source model, target data, source size), checked before the source model trains; None after
    `pretrain`, which stops there."""
    from .preflight import check_transfer
    generated: dict = {}
    if command in ("run", "demo", "pretrain"):
        source = load_task_data(config.source, generated)
        target = None if command == "pretrain" else load_task_data(config.target, generated)
        if target is not None:
            check_transfer(config, target, source)
        else:
            config.model.check()
        console.print(f"source task A: {len(source.y)} training examples, {source.num_classes} classes")
        model, metrics = pretrain(config, source, out)
        console.print(f"pretrained {config.model.name} on A: test accuracy {metrics.get('accuracy', float('nan')) * 100:.1f}%"
                      f"  -> {out / 'pretrained.safetensors'}")
        return None if command == "pretrain" else (model, target, len(source.y))
    path = Path(pretrained_path or config.pretrain.checkpoint or out / "pretrained.safetensors")
    meta = read_meta(path)
    target = load_task_data(config.target, generated)
    check_transfer(config, target, in_features=meta.get("model", {}).get("in_features"))
    model, _ = load_pretrained(config, path)
    return model, target, meta.get("source_size")


def print_row(console, r: dict) -> None:
    console.print(f"  k={r['labels_per_class']!s:>4} seed={r['seed']} {r['strategy']:<34} "
                  f"test acc {r['test']['accuracy'] * 100:5.1f}%  {r['seconds']:5.1f}s"
                  + (" cached" if r["cached"] else ""), highlight=False, soft_wrap=True)
