"""Batches. Tensors in memory are sliced directly (no per-item collation, which dominates the step
time of small models); any other Dataset goes through torch's DataLoader."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..distributed import shard
from .arrays import ArrayDataset


class TensorLoader:
    """Shuffled mini-batches of in-memory tensors; the order comes from its own seeded generator."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False):
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.dataset = ArrayDataset.__new__(ArrayDataset)
        self.dataset.x, self.dataset.y = x, y

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        order = order if order is not None else torch.arange(n)
        for b in range(len(self)):
            idx = shard(order[b * self.batch_size:(b + 1) * self.batch_size])   # this process's share
            yield self.x[idx], self.y[idx]


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0):
    """The fastest loader that fits the dataset; shuffling is reproducible from `seed`."""
    if isinstance(dataset, ArrayDataset):
        return TensorLoader(dataset.x, dataset.y, batch_size, shuffle, seed)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers)
