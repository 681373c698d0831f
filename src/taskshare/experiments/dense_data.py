"""Dense (per-pixel) tasks declared in a multi-task YAML: `kind: segmentation | depth | normals`, on the
built-in dense scenes (`data: {builtin: dense_scenes}`) or an npz file with per-pixel label arrays.

    data:
      npz: scenes.npz            # x (N, C, H, W) or (N, H, W); one label array per task
      tasks:
        - {name: seg, kind: segmentation, num_classes: 10, ignore_index: 255}
        - {name: depth, kind: depth, mask: depth_valid}       # (N, H, W), 0 = no measurement there
        - {name: normals, kind: normals}                      # (N, 3, H, W)
        - {name: count, kind: multiclass, num_classes: 3}     # per-image tasks may sit beside them

The heads decode to the inputs' (H, W). A mask turns its zero pixels into unknown labels (the ignore
index, or NaN for depth and normals), which add nothing to the loss or the metrics.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.multitask import MultiTaskDataset
from ..errors import ConfigError, TaskshareError
from ..tasks import Task
from ..tasks_dense import DENSE_KINDS, DenseTask
from ..validate import check_pair, check_training_labels, read_npz

# the built-in scenes' tasks and their kinds (taskshare.data.dense_scenes)
SCENE_TASKS = {"seg": "segmentation", "depth": "depth", "normals": "normals", "count": "multiclass"}


def make_task(t: Any, size: tuple[int, int]) -> Task:
    """A DenseTask for the dense kinds (heads decoding to `size`), a Task otherwise."""
    if t.kind in DENSE_KINDS:
        return DenseTask(t.name, kind=t.kind, num_classes=t.num_classes, ignore_index=t.ignore_index, size=size)
    if t.mask is not None:
        raise ConfigError(f"data.tasks: task {t.name!r} has a mask, which applies to the dense kinds "
                          f"{DENSE_KINDS} only, not to kind {t.kind!r}")
    return Task(t.name, t.kind, t.num_classes, t.num_outputs)


def check_dense_labels(task: DenseTask, y: np.ndarray, size: tuple[int, int], where: str) -> None:
    """Shape and values fit the kind, the label maps are the inputs' size, and some pixel is known."""
    task.check_labels(torch.as_tensor(y), where)
    if tuple(y.shape[-2:]) != tuple(size):
        raise TaskshareError(f"task {task.name!r}: {where} has label maps of {tuple(y.shape[-2:])} pixels; expected "
                             f"the inputs' {tuple(size)}")
    if not bool(task.known(task.prepare_target(torch.as_tensor(y))).any()):
        raise TaskshareError(f"task {task.name!r}: every pixel of the {where} is unknown; expected some labelled pixels")


def apply_mask(task: DenseTask, y: np.ndarray, mask: np.ndarray, where: str) -> np.ndarray:
    """Pixels where `mask` is 0 become unknown: the ignore index (segmentation) or NaN."""
    mask = np.asarray(mask)
    want = (y.shape[0], *y.shape[-2:])
    if mask.shape != want:
        raise TaskshareError(f"task {task.name!r}: {where} has shape {mask.shape}; expected {want} (one value per pixel)")
    off = mask == 0
    if task.kind == "segmentation":
        return np.where(off, task.ignore_index, y)
    y = y.astype(np.float32)
    return np.where(off[:, None] if task.kind == "normals" else off, np.nan, y).astype(np.float32)


def dense_npz_data(spec: Any) -> tuple[list[Task], MultiTaskDataset]:
    """Tasks and data from `spec.npz` (a MultiTaskData with dense tasks in `spec.tasks`)."""
    path = Path(spec.npz)
    masks = [t.mask for t in spec.tasks if t.mask is not None]
    arrays = read_npz(path, [spec.x, *(t.key or t.name for t in spec.tasks), *masks])
    x = np.asarray(arrays[spec.x], np.float32)
    if x.ndim == 3:                      # (N, H, W) grey images get their channel axis
        x = x[:, None]
    if x.ndim != 4:
        raise TaskshareError(f"array {spec.x!r} of {path} has shape {x.shape}; dense tasks need images "
                             f"(N, C, H, W) or (N, H, W)")
    size = (int(x.shape[2]), int(x.shape[3]))
    tasks, labels = [], {}
    for t in spec.tasks:
        task = make_task(t, size)
        key = t.key or t.name
        y = arrays[key]
        where = f"array {key!r} of {path}"
        check_pair(x, y, f"{path} (inputs {spec.x!r}, labels {key!r} of task {t.name!r})")
        if isinstance(task, DenseTask):
            if t.mask is not None:
                y = apply_mask(task, y, arrays[t.mask], f"mask {t.mask!r} of {path}")
            check_dense_labels(task, y, size, where)
        else:
            check_training_labels(task, y, where)
        tasks.append(task)
        labels[t.name] = y
    return tasks, MultiTaskDataset(x, labels)


def dense_scenes_data(spec: Any) -> tuple[list[Task], MultiTaskDataset]:
    """The built-in dense scenes (taskshare.data.dense_scenes) of `spec.images`: every task of
    SCENE_TASKS, or those `spec.tasks` names (with their options)."""
    from ..data.dense_scenes import make_dense_scenes
    from ..data.scenes import mnist_npz, sklearn_digits
    chosen = spec.tasks or [_default_spec(n) for n in SCENE_TASKS]
    for t in chosen:
        if t.name not in SCENE_TASKS:
            raise ConfigError(f"data.tasks: the dense scenes have no task {t.name!r}; expected some of {list(SCENE_TASKS)}")
        if t.kind != SCENE_TASKS[t.name]:
            raise ConfigError(f"data.tasks: task {t.name!r} of the dense scenes is kind {SCENE_TASKS[t.name]!r}, "
                              f"got {t.kind!r}")
    images, digit_labels = sklearn_digits() if spec.images == "sklearn" else mnist_npz(spec.images)
    scenes = make_dense_scenes(images, digit_labels, spec.scenes, spec.canvas, spec.seed)
    size = (spec.canvas, spec.canvas)
    tasks = [make_task(t, size) for t in chosen]
    return tasks, MultiTaskDataset(scenes["x"], {t.name: scenes[t.name] for t in chosen})


def _default_spec(name: str):
    from .specs import TaskSpec
    return TaskSpec(name, SCENE_TASKS[name], num_classes=10 if name == "seg" else 3 if name == "count" else None)
