"""Turn user data (numpy arrays, tensors, any Dataset) into validated tensors and datasets."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ..errors import NonFiniteError, TaskshareError


def as_tensor(values: Any, name: str) -> Tensor:
    """A tensor from an array-like; floating inputs must be finite."""
    if isinstance(values, Tensor):
        tensor = values
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values))
        except (TypeError, ValueError) as exc:
            raise TaskshareError(f"{name}: expected an array or tensor of numbers, got {type(values).__name__}") from exc
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor


def check_finite(x: Tensor, name: str) -> None:
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise NonFiniteError(
                f"{name} has {int(bad.sum())} NaN/Inf values (first at index {first}); expected finite inputs"
            )


class ArrayDataset(Dataset):
    """Inputs and targets held as tensors, indexable in batches as well as one by one."""

    def __init__(self, x: Any, y: Any, name: str = "data"):
        self.x = as_tensor(x, f"{name} inputs")
        self.y = as_tensor(y, f"{name} labels")
        if len(self.x) != len(self.y):
            raise TaskshareError(f"{name}: {len(self.x)} inputs but {len(self.y)} labels; expected equal lengths")
        check_finite(self.x, f"{name} inputs")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def subset(self, indices: Tensor | np.ndarray | list[int]) -> "ArrayDataset":
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        out = ArrayDataset.__new__(ArrayDataset)
        out.x, out.y = self.x[idx], self.y[idx]
        return out


def to_dataset(data: Any, name: str = "data") -> Dataset:
    """Accept an (x, y) pair of arrays/tensors or any map-style Dataset of (x, y) items."""
    if isinstance(data, Dataset):
        if len(data) == 0:  # type: ignore[arg-type]
            raise TaskshareError(f"{name} is empty; expected at least one example")
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        dataset = ArrayDataset(data[0], data[1], name)
        if len(dataset) == 0:
            raise TaskshareError(f"{name} is empty; expected at least one example")
        return dataset
    raise TaskshareError(f"{name}: expected an (x, y) pair or a torch Dataset, got {type(data).__name__}")


def labels_of(dataset: Dataset) -> Tensor:
    """All targets of a dataset (read once; cheap for ArrayDataset)."""
    if isinstance(dataset, ArrayDataset):
        return dataset.y
    # Datasets that know their labels (image files) answer without decoding a single input.
    if isinstance(getattr(dataset, "targets", None), Tensor):
        return dataset.targets  # type: ignore[attr-defined]
    if isinstance(dataset, Subset) and isinstance(getattr(dataset.dataset, "targets", None), Tensor):
        return dataset.dataset.targets[torch.as_tensor(dataset.indices, dtype=torch.long)]  # type: ignore[attr-defined]
    ys = [torch.as_tensor(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]
    return torch.stack(ys)
