"""Multi-task data. Two shapes:

- MultiTaskDataset: one input, several labels (a dict task -> labels); unknown labels are -1 (classes)
  or NaN (values) and add nothing to the loss.
- TaskLoader over one dataset per task: every batch comes from one task, chosen by a sampler
  (round robin, proportional to size, temperature-scaled p ~ n^(1/T), or uniform).
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

SAMPLERS = ("round_robin", "proportional", "temperature", "uniform")


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
    its data run out, so small tasks repeat under uniform or temperature sampling.
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
        return sum(batch_count(len(d), self.batch_size, self.shuffle) for d in self.datasets.values())

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
        for task in self.task_sequence():
            yield self._next_batch(task)

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
