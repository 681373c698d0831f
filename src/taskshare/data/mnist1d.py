"""MNIST-1D (Greydanus & Steinbach), generated locally by its package: no download.

The embedded transfer setting: source task A = digits 0-4, target task B = digits 5-9, relabelled
0-4. Generation takes about 7 s for 30k samples.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..errors import TaskshareError


@dataclass
class ClassSubset:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def generate(num_samples: int = 30_000, seed: int = 42, **overrides) -> dict[str, np.ndarray]:
    """x (n, 40) float32, y int64, and a held-out x_test / y_test (the package's 80/20 split)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise TaskshareError("MNIST-1D needs the mnist1d package: pip install 'taskshare[demo]'") from exc
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise TaskshareError(f"unknown MNIST-1D argument {key!r}; expected one of {sorted(vars(args))}")
        setattr(args, key, value)
    # The generator seeds numpy's and Python's global RNGs; give the caller theirs back.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64)}


def select_classes(data: dict[str, np.ndarray], classes: list[int]) -> ClassSubset:
    """Keep the given classes, relabelled 0..len(classes)-1 in the order given."""
    lookup = np.full(int(max(data["y"].max(), max(classes))) + 1, -1)
    lookup[np.asarray(classes)] = np.arange(len(classes))

    def take(x, y):
        keep = np.isin(y, classes)
        return x[keep], lookup[y[keep]]

    x, y = take(data["x"], data["y"])
    x_test, y_test = take(data["x_test"], data["y_test"])
    return ClassSubset(x, y, x_test, y_test)
