"""Batches. Tensors in memory are sliced directly (no per-item collation, which dominates the step
time of small models); any other Dataset goes through torch's DataLoader."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ..distributed import shard
from .arrays import ArrayDataset


class TensorLoader:
    """Shuffled mini-batches of in-memory tensors; the order comes from its own seeded generator."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 sharded: bool = True):
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last, self.sharded = batch_size, shuffle, drop_last, sharded
        self.generator = torch.Generator().manual_seed(seed)
        self.dataset = ArrayDataset.__new__(ArrayDataset)
        self.dataset.x, self.dataset.y = x, y

    def __len__(self) -> int:
        return batch_count(len(self.x), self.batch_size, self.shuffle, self.drop_last)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in batch_indices(len(self.x), self.batch_size, len(self), self.shuffle, self.generator, self.sharded):
            yield self.x[idx], self.y[idx]


def batch_count(n: int, batch_size: int, shuffle: bool, drop_last: bool = False) -> int:
    """Batches per epoch. A shuffled (training) epoch whose last batch would hold one example drops
    it: BatchNorm in train mode cannot normalise a batch of one, and with a new order every epoch
    the example is seen in the others."""
    if drop_last or (shuffle and n > batch_size and n % batch_size == 1):
        return n // batch_size
    return -(-n // batch_size)


def batch_indices(n: int, batch_size: int, batches: int, shuffle: bool, generator: torch.Generator,
                  sharded: bool = True) -> Iterator[Tensor]:
    """The row indices of an epoch's first `batches` batches of one order (shuffled from `generator`),
    each cut to this process's share when `sharded` and there are several processes."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for b in range(batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield shard(idx) if sharded else idx


class ShardedBatches(Sampler):
    """Batch sampler for torch's DataLoader: the global batches of one (shuffled) order, of which each
    process takes its share, so several processes together see each global batch once per epoch."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, generator: torch.Generator, sharded: bool = True):
        self.n, self.batch_size, self.shuffle, self.generator, self.sharded = n, batch_size, shuffle, generator, sharded

    def __len__(self) -> int:
        return batch_count(self.n, self.batch_size, self.shuffle)

    def __iter__(self) -> Iterator[list[int]]:
        for idx in batch_indices(self.n, self.batch_size, len(self), self.shuffle, self.generator, self.sharded):
            yield idx.tolist()


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                sharded: bool = True):
    """The fastest loader that fits the dataset; shuffling is reproducible from `seed`. Under several
    processes each takes its share of every batch (`sharded=False`: every process gets whole batches)."""
    if isinstance(dataset, ArrayDataset):
        return TensorLoader(dataset.x, dataset.y, batch_size, shuffle, seed, sharded=sharded)
    generator = torch.Generator().manual_seed(seed)
    batches = ShardedBatches(len(dataset), batch_size, shuffle, generator, sharded)  # type: ignore[arg-type]
    # A dataset that decodes files asks for its own workers (image sources); pinned memory only pays
    # when batches go to a GPU.
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    num_workers = max(num_workers, getattr(base, "loader_options", {}).get("num_workers", 0))
    return DataLoader(dataset, batch_sampler=batches, generator=generator, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=False)


def rows(dataset: Dataset, part: range) -> Dataset:
    """The rows `part` (a contiguous range) of a dataset; in-memory arrays are sliced, not copied."""
    if isinstance(dataset, ArrayDataset):
        out = ArrayDataset.__new__(ArrayDataset)
        out.x, out.y = dataset.x[part.start:part.stop], dataset.y[part.start:part.stop]
        return out
    return Subset(dataset, list(part))
