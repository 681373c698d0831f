"""Your own data, your own (or a hub's) model: the experiment behind `taskshare run` when a config
names a data source (image_folder, csv, parquet, jsonl, hf_dataset) or a pretrained model family
(torchvision, timm, hf).

transfer: a pretrained model goes straight to the target (no source stage); a built-in model is
first pretrained on `source`. Every strategy runs against scratch at each number of labels per
class and seed, as in the built-in experiment, and one model from the last entry of `shots` (first
seed) is saved for `taskshare predict` and `export` (kept.py says which).
multitask: one label column per task (blank cells unknown); one model per task against the sharing
modes; the hard-sharing model is saved for use.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import from_dict, to_dict
from ..data import few_shot, split
from ..data.sources import SOURCES, SourceData
from ..errors import ConfigError, TaskshareError
from .transfer import PretrainSpec, TransferSpec
from ..models.backbones.spec import BACKBONES, preprocessing_of
from .multitask import MultiTaskSpec
from .own_sources import hold_out, read_data
from ..serve.models import builtin_net
from .specs import ModelSpec
from ..tasks import Task
from ..train import evaluate, fit
from ..train.config import under

log = logging.getLogger("taskshare")
MODES = ("transfer", "multitask")


@dataclass
class OwnExperiment:
    mode: str = "transfer"            # transfer: strategies against scratch | multitask: sharing against one model per task
    target: dict[str, Any] | None = None   # transfer: the data source, e.g. {image_folder: photos}
    data: dict[str, Any] | None = None     # multitask: a source with one label column per task ({csv: f, labels: [a, b]})
    source: dict[str, Any] | None = None   # built-in models are pretrained on this source first
    test: dict[str, Any] | None = None     # a separate test source (default: test_fraction of the data held out)
    test_fraction: float = 0.2        # stratified by the first task's labels
    val_fraction: float = 0.15        # multitask: rows held out for model selection
    split_seed: int = 0               # seeds the test hold-out, fixed across strategies and seeds
    model: ModelSpec = field(default_factory=ModelSpec)   # {torchvision|timm|hf: ...} or {name, args}
    augment: Any = "none"             # images: none | light | standard | {preset, flip: false} | [transform names]
    num_workers: int = 0              # DataLoader workers that decode images (0: the main process decodes)
    feature_cache: str = "disk"       # disk: memory-mapped under OUT/features, shared by strategies and seeds | memory
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)
    transfer: TransferSpec = field(default_factory=TransferSpec)
    multitask: MultiTaskSpec = field(default_factory=lambda: MultiTaskSpec(modes=["single", "hard"]))
    output: str = "runs/own"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode = {self.mode!r}; expected one of {MODES}")
        data = self.target if self.mode == "transfer" else self.data
        if data is None:
            raise ConfigError(f"a {self.mode} config needs '{'target' if self.mode == 'transfer' else 'data'}': "
                              f"a data source ({', '.join(SOURCES.names())})")
        fam = self.model.family
        if self.mode == "transfer" and fam is None and self.source is None:
            raise ConfigError("a built-in model has no pretrained weights: give 'source' (data to pretrain on) "
                              "or a pretrained model (model: {torchvision: ...}, {timm: ...}, {hf: ...})")
        if self.feature_cache not in ("disk", "memory"):
            raise ConfigError(f"feature_cache = {self.feature_cache!r}; expected disk or memory")
        self._check_names()

    def _check_names(self) -> None:
        """What can be checked without data, checked before any data is read or model trained."""
        from ..data.augment import transform_names
        from .preflight import check_balancer, check_shots, check_strategies
        for name in ("test_fraction", "val_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"{name} = {value!r}; expected a fraction of the rows strictly between 0 and 1")
        if self.mode == "multitask" and self.test is None and self.test_fraction + self.val_fraction >= 1:
            raise ConfigError(f"test_fraction {self.test_fraction} + val_fraction {self.val_fraction} leave no "
                              f"training rows; expected a sum below 1")
        transform_names(self.augment)
        if self.mode == "transfer":
            check_shots(self.transfer.shots)
            check_strategies(self.transfer.strategies)
        else:
            labels = (self.data or {}).get("labels") or [None]
            check_balancer(self.multitask.balancer, len(labels))
        self.model.check()


def is_own_config(raw: dict[str, Any]) -> bool:
    """Whether a config is for this experiment: it names a source other than npz/builtin, or a
    pretrained model family."""
    for key in ("target", "data", "source", "test"):
        spec = raw.get(key)
        if isinstance(spec, dict) and any(k in SOURCES and k != "npz" for k in spec):
            return True
    model = raw.get("model")
    return isinstance(model, dict) and any(k in BACKBONES for k in model)


def load_own(raw: dict[str, Any]) -> OwnExperiment:
    return from_dict(OwnExperiment, raw, "config")


def refit_table(data: SourceData, rows: np.ndarray) -> SourceData:
    """A table source re-encoded with means, scales and categories fitted on `rows` (the training
    rows): fitted on every row, the held-out rows would shape the inputs they are scored on."""
    from ..data.sources.table import encode, refit
    encoding = refit(data.raw.iloc[rows], data.encoding, data.origin)
    return replace(data, inputs=encode(data.raw, encoding, data.origin, quiet=True), encoding=encoding)


def input_info(data: SourceData, tokenizer=None) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": data.kind, "encoding": data.encoding}
    if data.kind in ("table", "array"):
        info["features"] = int(np.asarray(data.inputs).reshape(len(data.inputs), -1).shape[1])
    if data.kind == "text" and tokenizer is not None:
        info["max_length"] = tokenizer.max_length
    return info


def check_classes(data: SourceData, task: str, shots: list, val_per_class: int | None) -> None:
    """Stop before training, naming the class, when a class is too small for the shots asked for
    or the data hold a single class."""
    names, y = data.class_names[task], data.labels[task]
    counts = np.bincount(y[y >= 0], minlength=len(names))
    present = [n for n, c in zip(names, counts) if c > 0]
    if len(present) < 2:
        raise TaskshareError(f"{data.origin}: task {task!r} has a single class ({present[0] if present else 'none'!r}); "
                             f"expected examples of at least 2 classes")
    for shot in shots:
        if shot == "all":
            continue
        need = shot + (val_per_class or shot)
        for name, count in zip(names, counts):
            if count < need:
                raise TaskshareError(f"class {name!r} of task {task!r} has {count} training examples; shots={shot} "
                                     f"needs {need} ({shot} to train + {val_per_class or shot} to validate)")


def warn_single_examples(train: SourceData, test: SourceData, task: str) -> None:
    """At shots: all, a class with a single training example trains on it, and validation, a stratified
    hold-out that cannot split one example, holds none of it: model selection (early stopping, the kept
    model, auto's choice) never sees how the class fares. Said, not stopped: the example still teaches
    the class, and the test rows may score it."""
    names, y = train.class_names[task], train.labels[task]
    counts = np.bincount(y[y >= 0], minlength=len(names))
    tested = np.bincount(test.labels[task][test.labels[task] >= 0], minlength=len(names))
    for c in np.flatnonzero(counts == 1):
        example = ""
        if train.kind in ("image", "text"):    # a file or a text a user can find; table rows are renumbered
            shown = str(train.inputs[int(np.flatnonzero(y == c)[0])])
            cut = train.kind == "text" and len(shown) > 60      # a path is kept whole: it is what finds the file
            example = f" ({shown[:60] + '...' if cut else shown})"
        scored = (f"the test rows hold {tested[c]} of it" if tested[c] else
                  "the test rows hold none either, so no score covers the class")
        log.warning("class %r of task %r has a single training example%s: at shots: all it goes to training and "
                    "validation holds no example of the class, so model selection does not see it; %s",
                    names[c], task, example, scored)


def classification_only(data: SourceData, task: str) -> None:
    """Transfer on your own data trains classifiers (few labels per class); a regression label is
    refused with the mode that does train it."""
    if data.kind_of(task) == "regression":
        raise TaskshareError(f"{data.origin}: label {task!r} is kind: regression, but transfer on your own data "
                             f"trains classifiers (labels per class); predict a value with mode: multitask "
                             f"(data: {{..., labels: [{task}], kind: regression}}), or set kind: classification")


@dataclass
class Target:
    """The transfer target as read and checked: every row with a known label, its train and test parts."""
    data: SourceData
    train: SourceData
    test: SourceData
    task: str


def read_target(config: OwnExperiment, image_size) -> Target:
    """The target read and checked (labels, test classes, labels per class, augmentation), cheap
    enough to do before the source is pretrained, so a bad target costs seconds, not a pretraining."""
    from ..data.augment import build_augment
    data = read_data(config.target, image_size, "target")  # type: ignore[arg-type]
    task = data.tasks[0]
    classification_only(data, task)
    data = data.select(np.flatnonzero(data.known(task)))   # unknown labels cannot train one task
    train, test = hold_out(data, config.test, config.test_fraction, config.split_seed, image_size, task, config.target)
    check_classes(train, task, config.transfer.shots, config.transfer.val_per_class)
    if "all" in config.transfer.shots:
        warn_single_examples(train, test, task)
    build_augment(config.augment, tuple(data.encoding["size"]) if data.kind == "image" else None, data.kind)
    return Target(data, train, test, task)


def encoded_with(target: Target, encoding: dict[str, Any]) -> Target:
    """A table target encoded with `encoding` (the pretrained source's means, scales and categories)
    from the cells read once: read again, every warning of the first reading (stray labels, cells read
    as unknown) came twice. Categories the source never saw, new with this encoding, are still said."""
    from ..data.sources.table import encode

    def encoded(part: SourceData, quiet: bool) -> SourceData:
        inputs = encode(part.raw, encoding, part.origin, quiet=quiet, reported=part.encoding)
        return replace(part, inputs=inputs, encoding=encoding)

    data = encoded(target.data, quiet=False)
    held_out = target.train is not target.data    # train and test are rows of data: said once, above
    train = encoded(target.train, quiet=True) if held_out else data
    return Target(data, train, encoded(target.test, quiet=held_out), target.task)


def model_size(config: OwnExperiment):
    """The backbone (pretrained families) and the image size its preprocessing expects."""
    if config.model.family is None:
        return None, (32, 32)
    backbone = config.model.backbone(pretrained=True)
    pre = preprocessing_of(backbone)
    return backbone, tuple(pre["size"]) if pre else (224, 224)


def run_own(config: OwnExperiment, out: Path, console) -> int:
    out.mkdir(parents=True, exist_ok=True)
    import yaml
    from ..io import atomic_write_bytes
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
    if config.mode == "multitask":
        from .own_multitask import run_own_multitask
        return run_own_multitask(config, out, console)
    from .own_transfer import run_own_transfer
    return run_own_transfer(config, out, console)


def pretrain_builtin(config: OwnExperiment, image_size, console,
                     target: SourceData | None = None) -> tuple[torch.nn.Module, dict[str, Any], int]:
    """A built-in model trained on the configured source (checked first against the `target` it
    will transfer to); returns it, the source's input record and its number of classes."""
    source = read_data(config.source, image_size, "source")  # type: ignore[arg-type]
    task_name = source.tasks[0]
    classification_only(source, task_name)
    source = source.select(np.flatnonzero(source.known(task_name)))
    check_classes(source, task_name, [], None)
    if target is not None:
        same_inputs(source, target)
    n_classes = len(source.class_names[task_name])
    info = input_info(source)
    task = Task("source", "multiclass", num_classes=n_classes)
    splits = split(source.dataset(task_name, num_workers=config.num_workers), config.pretrain.val_fraction,
                   seed=config.pretrain.train.seed)
    with torch.random.fork_rng(devices=[]):
        # the initial weights too come from the config's seed: drawn from the process's random state,
        # they differed between two runs of one command (and a resumed run would not match its checkpoint)
        torch.manual_seed(config.pretrain.train.seed)
        net = builtin_net(config.model.to_config(), info, n_classes)
        fit(net, task, splits.train, splits.val, under(config.pretrain.train, "pretrain"))
    metrics = evaluate(net, task, splits.val)
    console.print(f"pretrained {config.model.name} on the source ({len(source)} examples, {n_classes} classes): "
                  f"validation accuracy {metrics['accuracy'] * 100:.1f}%")
    return net, info, n_classes


def same_inputs(source: SourceData, target: SourceData) -> None:
    """The model pretrained on `source` can read `target`: the same kind of input and, for tables,
    every column the source's encoding reads (else the run stops after pretraining, not before)."""
    if source.kind != target.kind:
        raise TaskshareError(f"the source {source.origin} holds {source.kind} inputs, the target {target.origin} "
                             f"{target.kind}; a model pretrained on one reads only the same kind")
    if source.kind == "table" and target.raw is not None:
        columns = [c["name"] for c in source.encoding["columns"]]
        missing = [c for c in columns if c not in target.raw.columns]
        if missing:
            raise TaskshareError(f"the target {target.origin} lacks {len(missing)} of the source's feature columns "
                                 f"(first {missing[0]!r}); the model pretrained on {source.origin} reads {columns[:8]}"
                                 f"{' ...' if len(columns) > 8 else ''}, "
                                 f"so source and target need the same feature columns")


def with_cache_note(config: OwnExperiment, augment) -> None:
    if augment is not None:
        log.info("augmentation %s is on: the feature cache is off for every strategy (a frozen trunk sees new "
                 "crops each epoch, so its outputs cannot be computed once)", augment.names)
    else:
        log.info("no augmentation: probing stages train on cached trunk features (%s)", config.feature_cache)


def few_shot_splits(dataset, test_dataset, shot, seed, val_per_class):
    return few_shot(dataset, shot, seed=seed, val_per_class=val_per_class, test=test_dataset)


def run_own_command(args, raw: dict[str, Any], console) -> int:
    """`taskshare run CONFIG` for these configs (pretrain/transfer have no separate stages here)."""
    if args.command != "run":
        raise TaskshareError(f"'taskshare {args.command}' is for built-in data; a config with your own data source "
                             f"or a pretrained model runs with 'taskshare run'")
    config = load_own(raw)
    from .runs import guard                 # the same output-folder rule as every other mode
    out = Path(args.out or config.output)
    guard(args, out)
    if getattr(args, "resume", False):
        config = resumable_own(config, out)
    return run_own(config, out, console)


def resumable_own(config: OwnExperiment, out: Path) -> OwnExperiment:
    """Every training run of the experiment checkpointed under OUT/checkpoints (one sub-folder per
    stage, size, seed and strategy) and continued from there: finished runs restore at once, the
    interrupted one goes on from its last step, as the built-in modes do."""
    from dataclasses import replace

    from .runs import resumable
    return replace(config, pretrain=replace(config.pretrain, train=resumable(config.pretrain.train, out)),
                   transfer=replace(config.transfer, train=resumable(config.transfer.train, out)),
                   multitask=replace(config.multitask, train=resumable(config.multitask.train, out)))
