"""The multi-task experiment behind `taskshare run` with `mode: multitask` (and the demo's second
part): build the data, compare sharing modes against one model per task, write the reports."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import from_dict, to_dict, typed
from ..data.multitask import MultiTaskDataset
from ..data.splits import stratified_indices
from ..errors import ConfigError
from ..io import atomic_write_bytes
from ..validate import check_pair, check_training_labels, read_npz
from ..evaluate.report.sharing import mean_metric_name
from .modes import RUNNERS
from .runs import guard, only_run, rebuild_report, resumable, track
from .specs import ModelSpec, MultiTaskData
from ..models.zoo import trunk_factory
from ..train.compare_sharing import MODES, SharingResult, compare_sharing, sharing_modes
from ..tasks import Task
from ..tasks_dense import DENSE_KINDS
from ..train import TrainConfig
from ..train.config import under


@dataclass
@typed()
class MultiTaskSpec:
    modes: list[str] = field(default_factory=lambda: list(MODES))
    coupling: float = 1e-3            # soft sharing: lambda of the distance penalty
    layers: str | None = None         # soft sharing: regex of the trunk parameters to couple (default all)
    # one dataset per task: round_robin | proportional | temperature | uniform | joint (a batch of every
    # task per step); default: joint with a gradient-balancing method, else proportional
    sampler: str | None = None
    temperature: float = 2.0
    weights: dict[str, float] = field(default_factory=dict)
    balancer: Any = None              # every mode but single: a balancing method by name, or {name: ..., hyperparameter: ...}
    representation: bool = False      # gradient methods on the shared features instead of the parameters
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per mode, e.g. {mmoe: {num_experts: 8}}
    seeds: list[int] = field(default_factory=lambda: [0])
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15, lr=3e-3))


@dataclass
@typed()
class MultiTaskExperiment:
    mode: str = "multitask"
    data: MultiTaskData = field(default_factory=lambda: MultiTaskData(builtin="digit_scenes"))
    model: ModelSpec = field(default_factory=lambda: ModelSpec("cnn2d", {"channels": [8, 16, 32]}))
    multitask: MultiTaskSpec = field(default_factory=MultiTaskSpec)
    output: str = "runs/multitask"
    track: dict[str, Any] = field(default_factory=dict)   # {tensorboard: DIR, mlflow: URI}: log the run there
    note: str = ""                    # one line for the reader: what this comparison shows and why (terminal, reports)

    def __post_init__(self) -> None:
        per_task = bool(self.data.tasks) and all(t.npz for t in self.data.tasks)
        if sum([self.data.builtin is not None, self.data.npz is not None, per_task]) != 1:
            raise ConfigError.at("data", ": give exactly one of 'builtin' (digit_scenes), 'npz' (one file with every "
                              "task's labels), or an 'npz' file for every entry of 'tasks'")
        if self.data.builtin not in (None, "digit_scenes", "dense_scenes"):
            raise ConfigError.at("data.builtin", f" = {self.data.builtin!r}; expected 'digit_scenes' or 'dense_scenes'")
        bad = [m for m in self.multitask.modes if m not in sharing_modes()]
        if bad:
            raise ConfigError.at("multitask.modes", f" has {bad[0]!r}; expected some of {sharing_modes()}")
        if self.model.pretrained is not None:   # pretrained families run through the own-data experiment
            raise ConfigError.at("model", f" = {self.model.pretrained!r}; expected a built-in ({{name: ..., args: ...}})")


def load_multitask(data: dict) -> MultiTaskExperiment:
    return from_dict(MultiTaskExperiment, data, "config")


def build_data(spec: MultiTaskData) -> tuple[list[Task], Any]:
    """The tasks and their data: a MultiTaskDataset (shared inputs), or task -> ArrayDataset when
    every task names its own file."""
    if spec.builtin == "digit_scenes":
        from ..data.scenes import make_scenes, mnist_npz, sklearn_digits
        images, labels = sklearn_digits() if spec.images == "sklearn" else mnist_npz(spec.images)
        scenes = make_scenes(images, labels, spec.scenes, spec.canvas, spec.digits, missing=spec.missing, seed=spec.seed)
        return [Task(n, "binary") for n in scenes.labels], MultiTaskDataset(scenes.x, scenes.labels)
    if spec.builtin == "dense_scenes":
        from .dense_data import dense_scenes_data
        return dense_scenes_data(spec)
    own = [t.npz is not None for t in spec.tasks]
    if spec.tasks and all(own):
        return _per_task_files(spec)
    if any(own):
        raise ConfigError("data.tasks: give every task its own npz file, or none (all labels in data.npz)")
    if spec.npz is None:
        raise ConfigError("data: name an npz file, or a file per task in data.tasks")
    path = Path(spec.npz)
    if not spec.tasks:
        raise ConfigError("data.tasks: list the tasks held in the file (name, kind, num_classes, key)")
    if any(t.kind in DENSE_KINDS for t in spec.tasks):   # per-pixel labels: their own reading and checks
        from .dense_data import dense_npz_data
        return dense_npz_data(spec)
    tasks = [Task(t.name, t.kind, t.num_classes, t.num_outputs) for t in spec.tasks]
    arrays = read_npz(path, [spec.x, *(t.key or t.name for t in spec.tasks)])
    labels = {}
    for t, task in zip(spec.tasks, tasks):
        key = t.key or t.name
        check_pair(arrays[spec.x], arrays[key], f"{path} (inputs {spec.x!r}, labels {key!r} of task {t.name!r})")
        check_training_labels(task, arrays[key], f"array {key!r} of {path}")
        labels[t.name] = arrays[key]
    return tasks, MultiTaskDataset(arrays[spec.x].astype(np.float32), labels)


def _per_task_files(spec: MultiTaskData) -> tuple[list[Task], dict]:
    from ..data import ArrayDataset
    tasks, datasets = [], {}
    for t in spec.tasks:
        path = Path(t.npz)  # type: ignore[arg-type]
        task = Task(t.name, t.kind, t.num_classes, t.num_outputs)
        f = read_npz(path, ["x", "y"], where=f"data of task {t.name!r}:")
        check_pair(f["x"], f["y"], f"{path} (task {t.name!r})")
        check_training_labels(task, f["y"], f"array 'y' of {path}")
        datasets[t.name] = ArrayDataset(f["x"].astype(np.float32), f["y"], f"data of task {t.name!r}")
        tasks.append(task)
    return tasks, datasets


def split_data(data: Any, spec: MultiTaskData) -> tuple[Any, Any, Any]:
    """Random, disjoint train/validation/test rows (per task when each task has its own data)."""
    if isinstance(data, dict):
        parts = {t: split_data(_as_mtd(t, d), spec) for t, d in data.items()}
        return tuple({t: _as_pair(t, p[i]) for t, p in parts.items()} for i in range(3))  # type: ignore[return-value]
    return tuple(data.subset(rows) for rows in split_rows(len(data), spec))  # type: ignore[return-value]


def split_rows(n: int, spec: MultiTaskData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The train, validation and test row indices split_data uses for n rows (known before the
    inputs are encoded, so an encoding can be fitted on the training rows alone)."""
    strata = np.zeros(n, np.int64)
    rest, test = stratified_indices(strata, spec.test_fraction, spec.seed)
    train, val = stratified_indices(strata[rest], spec.val_fraction / (1 - spec.test_fraction), spec.seed + 1)
    return rest[train], rest[val], test


def _as_mtd(task: str, d) -> MultiTaskDataset:
    return MultiTaskDataset(d.x, {task: d.y})


def _as_pair(task: str, d: MultiTaskDataset):
    return d.x, d.labels[task]


def run_multitask(config: MultiTaskExperiment, out: Path, console=None) -> tuple[list[Task], list[SharingResult]]:
    """Compare the configured sharing modes over every seed; writes the reports into `out`."""
    tasks, data = build_data(config.data)
    if config.model.name == "mlp" and isinstance(data, MultiTaskDataset) and data.x.dim() > 2:
        data.x = data.x.reshape(len(data.x), -1)
    train, val, test = split_data(data, config.data)
    if console:
        if isinstance(train, MultiTaskDataset):
            known = {t.name: int(t.known(t.prepare_target(train.labels[t.name])).sum()) for t in tasks}
            console.print(f"multi-task data: {len(train)} train / {len(val)} val / {len(test)} test inputs, "
                          f"{len(tasks)} tasks; known training labels per task: {known}")
        else:
            console.print(f"multi-task data: one dataset per task, training sizes "
                          f"{ {t: len(d[1]) for t, d in train.items()} }; sampler {config.multitask.sampler or 'default'}")
    example = train.x[:2] if isinstance(train, MultiTaskDataset) else torch.as_tensor(next(iter(train.values()))[0][:2])
    factory = trunk_factory(config.model.name, config.model.args, example, any(t.kind in DENSE_KINDS for t in tasks))
    rows: list[SharingResult] = []
    for seed in config.multitask.seeds:
        spec = config.multitask
        for r in compare_sharing(factory, tasks, train, val, test, spec.modes, under(replace(spec.train, seed=seed), f"seed{seed}"),
                                 spec.coupling, spec.layers, spec.sampler, spec.temperature, spec.weights,
                                 spec.balancer, spec.representation, spec.options):
            rows.append(r)
            if console:
                dm = "" if r.delta_m is None else f"  delta_m {r.delta_m:+.2f}%"
                console.print(f"  seed={seed} {r.mode:<13} mean {mean_metric_name(tasks)} "
                              f"{np.mean(list(r.main.values())):.3f}{dm}  {r.params:,} params  {r.seconds:.0f}s", highlight=False)
    write_multitask_reports(out, tasks, rows, to_dict(config))
    return tasks, rows


def write_multitask_reports(out: Path, tasks: list[Task], rows: list[SharingResult], config: dict) -> None:
    from ..evaluate.report.sharing import sharing_markdown
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "multitask_results.json",
                       json.dumps({"config": config, "results": [r.to_dict() for r in rows]}, indent=2, default=str).encode())
    atomic_write_bytes(out / "multitask_report.md", sharing_markdown(tasks, rows, note=config.get("note", "")).encode())


@RUNNERS.register("multitask")
def run_multitask_command(args, raw: dict, console) -> int:
    """`taskshare run CONFIG` with `mode: multitask`."""
    only_run(args, "a multi-task config")
    config = load_multitask(raw)
    from .preflight import check_multitask
    check_multitask(config)
    guard(args, Path(args.out or config.output))
    if args.resume:
        train = resumable(config.multitask.train, args.shared_out or config.output)
        config = replace(config, multitask=replace(config.multitask, train=train))
    return report_multitask(config, Path(args.out or config.output), console)


def quick_multitask(config: MultiTaskExperiment) -> MultiTaskExperiment:
    """The demo's small version: fewer scenes (a few-label regime stays few) and epochs."""
    data = replace(config.data, scenes=min(config.data.scenes, 600))
    spec = replace(config.multitask, train=replace(config.multitask.train, epochs=3, min_steps=30))
    return replace(config, data=data, multitask=spec)


def report_multitask(config: MultiTaskExperiment, out: Path, console) -> int:
    """run_multitask, then the comparison in the terminal, report.html and the trackers."""
    from ..evaluate.report.sharing import print_sharing
    started = time.perf_counter()
    tasks, rows = run_multitask(config, out, console)
    print_sharing(console, tasks, rows, "multi-task: one model per task vs sharing")
    if config.note:
        console.print(config.note, style="bold", markup=False, highlight=False)
    rebuild_report(out)
    track(config, out)
    console.print(f"done in {time.perf_counter() - started:.0f}s; report: {out / 'multitask_report.md'}")
    return 0
