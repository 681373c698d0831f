"""Train/validation/test splits: stratified where labels are classes, and k-labels-per-class subsets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..errors import TaskshareError
from .arrays import ArrayDataset, labels_of, to_dataset


@dataclass
class Splits:
    """Three datasets. Model selection reads `val`; `test` is only ever reported."""

    train: Dataset
    val: Dataset
    test: Dataset | None = None

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v is not None}


def _subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    if isinstance(dataset, ArrayDataset):
        return dataset.subset(indices)
    return Subset(dataset, indices.tolist())


def stratified_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so each class keeps `fraction` of its items in the second part (at least one
    item in each part for classes with two or more)."""
    if not 0 < fraction < 1:
        raise TaskshareError(f"validation fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_second = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_second = min(max(n_second, 1), len(idx) - 1)
        second.append(idx[:n_second])
        first.append(idx[n_second:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def _is_class_labels(y: torch.Tensor) -> bool:
    return y.dim() == 1 and not y.is_floating_point()


def split(data: Any, val_fraction: float = 0.1, test: Any = None, seed: int = 0, stratify: bool = True) -> Splits:
    """Hold out a validation set from `data` (stratified for class labels); `test` stays untouched."""
    dataset = to_dataset(data, "training data")
    y = labels_of(dataset)
    if stratify and _is_class_labels(y):
        train_idx, val_idx = stratified_indices(y.numpy(), val_fraction, seed)
    else:
        perm = np.random.default_rng(seed).permutation(len(dataset))
        n_val = max(1, int(round(len(dataset) * val_fraction)))
        train_idx, val_idx = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    if len(train_idx) == 0:
        raise TaskshareError(f"training data has {len(dataset)} examples: too few to hold out a validation set")
    test_set = to_dataset(test, "test data") if test is not None else None
    return Splits(_subset(dataset, train_idx), _subset(dataset, val_idx), test_set)


def per_class(y: np.ndarray | torch.Tensor, k: int, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of k random examples of every class (skipping `exclude`); errors if a class has fewer."""
    y = np.asarray(y)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise TaskshareError(f"labels per class must be a positive integer, got {k!r}")
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(y), bool)
    if exclude is not None:
        taken[exclude] = True
    chosen = []
    for c in np.unique(y):
        idx = np.flatnonzero((y == c) & ~taken)
        if len(idx) < k:
            raise TaskshareError(f"class {c} has {len(idx)} available examples but {k} per class were asked for")
        chosen.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def few_shot(data: Any, k: int | str, seed: int = 0, val_per_class: int | None = None,
             val_fraction: float = 0.1, test: Any = None) -> Splits:
    """k labelled examples per class for training plus a disjoint validation set.

    The validation set has `val_per_class` examples per class (default: k, so the labelled budget is
    stated honestly as k train + k validation per class). k="all" uses every example with a stratified
    `val_fraction` hold-out.
    """
    if k == "all":
        return split(data, val_fraction, test=test, seed=seed)
    dataset = to_dataset(data, "training data")
    y = labels_of(dataset)
    if not _is_class_labels(y):
        raise TaskshareError("k labels per class needs integer class labels of shape (n,)")
    train_idx = per_class(y.numpy(), int(k), seed)
    val_idx = per_class(y.numpy(), val_per_class or int(k), seed + 1_000_003, exclude=train_idx)
    test_set = to_dataset(test, "test data") if test is not None else None
    return Splits(_subset(dataset, train_idx), _subset(dataset, val_idx), test_set)
