"""Multi-task data. Two shapes:

- MultiTaskDataset: one input, several labels (a dict task -> labels); unknown labels are -1 (classes)
  or NaN (values) and add nothing to the loss.
- TaskLoader over one dataset per task: every batch comes from one task, chosen by a sampler
  (round robin, proportional to size, temperature-scaled p ~ n^(1/T), or uniform), or, with the
  "joint" sampler, every batch holds one batch of every task (what gradient balancing needs: the
  per-task gradients of one step), its inputs concatenated in task order and its labels a JointLabels.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import TaskshareError
from ..distributed import shard
from .arrays import ArrayDataset, as_tensor, check_finite, to_dataset
from .loaders import batch_count, batch_indices

SAMPLERS = ("round_robin", "proportional", "temperature", "uniform", "joint")
SINGLE_TASK_SAMPLERS = SAMPLERS[:-1]


class JointLabels(dict):
    """The labels of a joint batch, task -> labels: the batch's inputs are each task's inputs
    concatenated in this dict's order, so task t's labels belong to its own block of rows (not to
    every row, as in a MultiTaskDataset batch)."""

    def rows(self) -> dict[str, slice]:
        out, start = {}, 0
        for task, y in self.items():
            out[task] = slice(start, start + len(y))
            start += len(y)
        return out


def rows_of_tasks(outputs: Mapping[str, Tensor], labels: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each task's outputs for the rows its labels belong to: its own block in a joint batch, every
    row otherwise."""
    if not isinstance(labels, JointLabels):
        return dict(outputs)
    return {t: outputs[t][rows] for t, rows in labels.rows().items()}


class MultiTaskDataset(Dataset):
    """Inputs shared by every task, with each task's labels; items are (x, {task: y})."""

    def __init__(self, x: Any, labels: Mapping[str, Any], name: str = "data"):
        self.x = as_tensor(x, f"{name} inputs")
        check_finite(self.x, f"{name} inputs")
        if not labels:
            raise TaskshareError(f"{name}: no task labels given; expected a mapping task name -> labels")
        self.labels = {}
        for task, y in labels.items():
            y = as_tensor(y, f"{name} labels of task {task!r}")
            if len(y) != len(self.x):
                raise TaskshareError(f"{name}: task {task!r} has {len(y)} labels for {len(self.x)} inputs; "
                                     f"expected one label (or the missing marker) per input")
            self.labels[task] = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], {t: y[index] for t, y in self.labels.items()}

    def subset(self, indices) -> "MultiTaskDataset":
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        out = MultiTaskDataset.__new__(MultiTaskDataset)
        out.x, out.labels = self.x[idx], {t: y[idx] for t, y in self.labels.items()}
        return out


class MultiTaskLoader:
    """Shuffled batches (x, {task: y}) of a MultiTaskDataset held in memory."""

    def __init__(self, dataset: MultiTaskDataset, batch_size: int, shuffle: bool, seed: int = 0):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return batch_count(len(self.dataset), self.batch_size, self.shuffle)

    def __iter__(self) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        for idx in batch_indices(len(self.dataset), self.batch_size, len(self), self.shuffle, self.generator):
            yield self.dataset.x[idx], {t: y[idx] for t, y in self.dataset.labels.items()}


def task_probabilities(sizes: Mapping[str, int], sampler: str, temperature: float = 2.0) -> dict[str, float]:
    """How often each task's batch is drawn. proportional: n_t / sum n; temperature: n_t^(1/T)
    normalised (T=1 is proportional, large T approaches uniform); uniform: 1/T_tasks."""
    if sampler not in SAMPLERS:
        raise TaskshareError(f"sampler {sampler!r}; expected one of {SAMPLERS}")
    if sampler == "joint":     # every task in every batch
        return {t: 1.0 for t in sizes}
    if sampler == "temperature" and temperature <= 0:
        raise TaskshareError(f"sampler temperature must be > 0, got {temperature!r}")
    power = {"proportional": 1.0, "temperature": 1.0 / temperature, "uniform": 0.0, "round_robin": 0.0}[sampler]
    weights = {t: float(n) ** power for t, n in sizes.items()}
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class TaskLoader:
    """Batches (x, {task: y}) from one dataset per task; each batch holds a single task.

    An epoch is as many batches as one pass over every task's data takes (the sum of batch_count's);
    the sampler decides which task each batch comes from. A task's own order is reshuffled each time
    its data run out, so small tasks repeat under uniform or temperature sampling. With the "joint"
    sampler each batch holds `batch_size` rows of every task (x concatenated in task order, labels a
    JointLabels) and an epoch is one pass over the largest task's data, the smaller ones repeating.
    """

    def __init__(self, datasets: Mapping[str, Any], batch_size: int, sampler: str = "proportional",
                 temperature: float = 2.0, seed: int = 0, shuffle: bool = True):
        if not datasets:
            raise TaskshareError("TaskLoader needs at least one task's dataset")
        self.datasets = {t: _as_array_dataset(d, f"data of task {t!r}") for t, d in datasets.items()}
        self.batch_size, self.sampler, self.shuffle = batch_size, sampler, shuffle
        self.probabilities = task_probabilities({t: len(d) for t, d in self.datasets.items()}, sampler, temperature)
        self.generator = torch.Generator().manual_seed(seed)
        self._orders = {t: self._new_order(t) for t in self.datasets}
        self._cursor = {t: 0 for t in self.datasets}

    def __len__(self) -> int:
        counts = [batch_count(len(d), self.batch_size, self.shuffle) for d in self.datasets.values()]
        return max(counts) if self.sampler == "joint" else sum(counts)

    def _new_order(self, task: str) -> Tensor:
        n = len(self.datasets[task])
        return torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)

    def _next_batch(self, task: str) -> tuple[Tensor, dict[str, Tensor]]:
        ds, start = self.datasets[task], self._cursor[task]
        # a pass ends where batch_count ends it: a shuffled pass never closes on a batch of one, which
        # BatchNorm in train mode cannot normalise (the example left out is seen in the next order)
        if start >= batch_count(len(ds), self.batch_size, self.shuffle) * self.batch_size:
            self._orders[task], start = self._new_order(task), 0
        idx = shard(self._orders[task][start:start + self.batch_size])   # this process's share
        self._cursor[task] = start + self.batch_size
        return ds.x[idx], {task: ds.y[idx]}

    def task_sequence(self) -> list[str]:
        """The tasks of one epoch's batches, in order."""
        names = list(self.datasets)
        if self.sampler == "round_robin":
            return [names[i % len(names)] for i in range(len(self))]
        p = torch.tensor([self.probabilities[t] for t in names])
        draws = torch.multinomial(p, len(self), replacement=True, generator=self.generator)
        return [names[i] for i in draws.tolist()]

    def __iter__(self) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        if self.sampler == "joint":
            for _ in range(len(self)):
                yield self._joint_batch()
            return
        for task in self.task_sequence():
            yield self._next_batch(task)

    def _joint_batch(self) -> tuple[Tensor, JointLabels]:
        parts = [self._next_batch(task) for task in self.datasets]
        shapes = {t: tuple(x.shape[1:]) for t, (x, _) in zip(self.datasets, parts)}
        if len(set(shapes.values())) > 1:
            raise TaskshareError(f"the joint sampler stacks every task's inputs in one batch, so they need one "
                                 f"shape; got {shapes} (use a single-task sampler, e.g. 'proportional')")
        return torch.cat([x for x, _ in parts]), JointLabels((t, y[t]) for t, (_, y) in zip(self.datasets, parts))

    def state_dict(self) -> dict:
        """Where the loader stands between epochs (each task's order and position carry over epochs):
        saved with run checkpoints, so a resumed run draws the same batches."""
        return {"generator": self.generator.get_state(), "orders": {t: o.clone() for t, o in self._orders.items()},
                "cursor": dict(self._cursor)}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._orders = {t: o.clone() for t, o in state["orders"].items()}
        self._cursor = dict(state["cursor"])


def _as_array_dataset(data: Any, name: str) -> ArrayDataset:
    dataset = to_dataset(data, name)
    if not isinstance(dataset, ArrayDataset):
        xs, ys = zip(*(dataset[i] for i in range(len(dataset))))  # type: ignore[arg-type]
        dataset = ArrayDataset(torch.stack([torch.as_tensor(v) for v in xs]), torch.stack([torch.as_tensor(v) for v in ys]), name)
    return dataset
