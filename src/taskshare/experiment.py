"""The pretrain-then-transfer experiment behind `taskshare run|pretrain|transfer|demo`.

Source task A and target task B come from data specs (the built-in MNIST-1D generator or an .npz
file); a model from the zoo is pretrained on A, its head cut, and every strategy is run on B at each
number of labels per class and seed, against the scratch baseline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import from_dict, load_yaml, to_dict
from .data import Splits, few_shot, split
from .errors import ConfigError, TaskshareError
from .io import safe_name
from .models import build_model, transfer_model
from .tasks import Task
from .train.config import under
from .validate import check_dense_classes, check_pair, class_labels, read_npz, typed
from .train import TrainConfig, evaluate, fit, load_into, read_meta, save
from .transfer import compare

log = logging.getLogger("taskshare")


@dataclass
@typed()
class DataSpec:
    builtin: str | None = None        # "mnist1d": generated locally, no download
    npz: str | None = None            # or an .npz file holding the arrays named below
    x: str = "x"
    y: str = "y"
    x_test: str = "x_test"            # used when present in the file
    y_test: str = "y_test"
    classes: list[int] | None = None  # keep these classes, relabelled 0..n-1 in this order
    num_samples: int = 30_000         # builtin only: samples generated (80% train, 20% test)
    seed: int = 42                    # builtin only: generator seed
    test_fraction: float = 0.2        # npz without test arrays: stratified hold-out


@dataclass
@typed()
class ModelSpec:
    name: str = "mlp"                                    # a built-in model: mlp | cnn1d
    args: dict[str, Any] = field(default_factory=dict)   # its keyword arguments, e.g. hidden: [256, 256]


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
        for shot in self.transfer.shots:
            if shot != "all" and (not isinstance(shot, int) or isinstance(shot, bool) or shot < 1):
                raise ConfigError.at("transfer.shots", f" has {shot!r}; expected positive integers or 'all'")
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


@dataclass
class TaskData:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y.max(), self.y_test.max()) + 1)


def _relabel(x: np.ndarray, y: np.ndarray, classes: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    if classes is None:
        return x, y
    missing = [c for c in classes if not (y == c).any()]
    if missing:
        raise TaskshareError(f"classes {missing} do not occur in the data; present: {sorted(np.unique(y).tolist())}")
    keep = np.isin(y, classes)
    lookup = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([lookup[int(v)] for v in y[keep]], dtype=np.int64)


def load_task_data(spec: DataSpec, generated: dict) -> TaskData:
    """Arrays for one task; builtin data are generated once per experiment (memoised in `generated`)."""
    if spec.builtin == "mnist1d":
        key = ("mnist1d", spec.num_samples, spec.seed)
        if key not in generated:
            from .data.mnist1d import generate
            generated[key] = generate(spec.num_samples, spec.seed)
        raw = generated[key]
    else:
        path = Path(spec.npz)  # type: ignore[arg-type]
        raw = read_npz(path, [spec.x, spec.y], [spec.x_test, spec.y_test])
        raw = {"x": raw[spec.x], "y": raw[spec.y], "x_test": raw.get(spec.x_test), "y_test": raw.get(spec.y_test)}
        for part, inputs, labels in (("", "x", "y"), (" test", "x_test", "y_test")):
            if raw[inputs] is not None and raw[labels] is not None:
                check_pair(raw[inputs], raw[labels], f"{path}{part} arrays ({getattr(spec, inputs)!r}, {getattr(spec, labels)!r})")
                raw[labels] = class_labels(raw[labels], f"array {getattr(spec, labels)!r} in {path}")
        if raw["x_test"] is None or raw["y_test"] is None:
            from .data import stratified_indices
            train_idx, test_idx = stratified_indices(raw["y"], spec.test_fraction, spec.seed)
            raw = {"x": raw["x"][train_idx], "y": raw["y"][train_idx],
                   "x_test": raw["x"][test_idx], "y_test": raw["y"][test_idx]}
    x, y = _relabel(np.asarray(raw["x"], np.float32), np.asarray(raw["y"]).astype(np.int64), spec.classes)
    x_test, y_test = _relabel(np.asarray(raw["x_test"], np.float32), np.asarray(raw["y_test"]).astype(np.int64), spec.classes)
    where = f"{spec.npz} ({spec.y!r})" if spec.npz else f"{spec.builtin} labels"
    if len(y) == 0 or len(y_test) == 0:
        raise TaskshareError(f"{where}: {len(y)} training and {len(y_test)} test examples after the split; expected "
                             f"at least one of each (more examples, or x_test and y_test arrays)")
    n = check_dense_classes(y, where, "; or list the classes to keep, e.g. classes: [10, 11, 12, 13]")
    if y_test.max() >= n:
        raise TaskshareError(f"{where}: the test labels reach {y_test.max()}, but training has classes 0..{n - 1}; "
                             f"expected test classes seen in training")
    return TaskData(x, y, x_test, y_test)


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
        model = build_model(config.model.name, source.x.shape[1], task.out_dim, **config.model.args)
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
    model = build_model(config.model.name, shapes["in_features"], shapes["num_outputs"], **config.model.args)
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
                row = res.to_dict()
                for stage in row["stages"]:   # keep the validation curve, drop the rest of the history
                    stage["curve"] = [e.get("val_score", float("nan")) for e in stage.pop("history", None) or []]
                results.append(row)
                if on_result:
                    on_result(row)
    return results


def _model_saver(config: ExperimentConfig, task: Task, out_dir: Path | None, shot, seed: int):
    """A callback writing transferred weights; 'best' keeps, per shot and seed, the model with the best
    validation score (what you would deploy), overwriting atomically as better ones arrive."""
    mode = config.transfer.save_models
    if out_dir is None or mode == "none":
        return None
    best = {"score": None}
    sign = 1 if task.higher_is_better else -1

    def on_model(model, result) -> None:
        meta = {"strategy": result.strategy, "labels_per_class": shot, "seed": seed, "test": result.test,
                "val_score": result.val_score, "task": task.describe(), "source_model": to_dict(config.model)}
        if mode == "all":
            name = safe_name(result.strategy)
            save(out_dir / "models" / f"k{shot}_seed{seed}_{name}.safetensors", model, meta)
        elif best["score"] is None or sign * result.val_score > sign * best["score"]:
            best["score"] = result.val_score
            save(out_dir / "models" / f"k{shot}_seed{seed}_best.safetensors", model, meta)

    return on_model


def _with_seed(cfg: TrainConfig, seed: int) -> TrainConfig:
    return replace(cfg, seed=seed)
