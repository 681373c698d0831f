"""`npz: FILE`: arrays `x` and `y` (names configurable), as the built-in experiment reads them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing


@SOURCES.register("npz")
def npz(path: str | Path, x: str = "x", y: str = "y", label: str = "label") -> SourceData:
    file = existing(path, "data file")
    with np.load(file, allow_pickle=False) as f:
        for key in (x, y):
            if key not in f.files:
                raise TaskshareError(f"{file} has no array {key!r}; it holds {sorted(f.files)}")
        inputs, targets = f[x].astype(np.float32), np.asarray(f[y])
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise TaskshareError(f"{file}: {y!r} must hold integer class labels of shape (n,); got {targets.dtype} {targets.shape}")
    classes = sorted(int(c) for c in np.unique(targets[targets >= 0]))
    index = {c: i for i, c in enumerate(classes)}
    encoded = np.array([index.get(int(v), -1) for v in targets], np.int64)
    return SourceData("array", inputs, {label: encoded}, {label: [str(c) for c in classes]}, {"shape": list(inputs.shape[1:])},
                      str(file))
