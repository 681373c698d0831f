"""A single task's arrays from its DataSpec: the built-in MNIST-1D generator or an .npz file, the
classes kept and relabelled, a test split held out when the file has none, and the labels checked."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TaskshareError
from ..validate import check_dense_classes, check_pair, class_labels, read_npz
from .specs import DataSpec


@dataclass
class TaskData:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y.max(), self.y_test.max()) + 1)


def _relabel(x: np.ndarray, y: np.ndarray, classes: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    if classes is None:
        return x, y
    missing = [c for c in classes if not (y == c).any()]
    if missing:
        raise TaskshareError(f"classes {missing} do not occur in the data; present: {sorted(np.unique(y).tolist())}")
    keep = np.isin(y, classes)
    lookup = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([lookup[int(v)] for v in y[keep]], dtype=np.int64)


def load_task_data(spec: DataSpec, generated: dict) -> TaskData:
    """Arrays for one task; builtin data are generated once per experiment (memoised in `generated`)."""
    if spec.builtin == "mnist1d":
        key = ("mnist1d", spec.num_samples, spec.seed)
        if key not in generated:
            from ..data.mnist1d import generate
            generated[key] = generate(spec.num_samples, spec.seed)
        raw = generated[key]
    else:
        path = Path(spec.npz)  # type: ignore[arg-type]
        raw = read_npz(path, [spec.x, spec.y], [spec.x_test, spec.y_test])
        raw = {"x": raw[spec.x], "y": raw[spec.y], "x_test": raw.get(spec.x_test), "y_test": raw.get(spec.y_test)}
        for part, inputs, labels in (("", "x", "y"), (" test", "x_test", "y_test")):
            if raw[inputs] is not None and raw[labels] is not None:
                check_pair(raw[inputs], raw[labels], f"{path}{part} arrays ({getattr(spec, inputs)!r}, {getattr(spec, labels)!r})")
                raw[labels] = class_labels(raw[labels], f"array {getattr(spec, labels)!r} in {path}")
        if raw["x_test"] is None or raw["y_test"] is None:
            from ..data import stratified_indices
            train_idx, test_idx = stratified_indices(raw["y"], spec.test_fraction, spec.seed)
            raw = {"x": raw["x"][train_idx], "y": raw["y"][train_idx],
                   "x_test": raw["x"][test_idx], "y_test": raw["y"][test_idx]}
    x, y = _relabel(np.asarray(raw["x"], np.float32), np.asarray(raw["y"]).astype(np.int64), spec.classes)
    x_test, y_test = _relabel(np.asarray(raw["x_test"], np.float32), np.asarray(raw["y_test"]).astype(np.int64), spec.classes)
    where = f"{spec.npz} ({spec.y!r})" if spec.npz else f"{spec.builtin} labels"
    if len(y) == 0 or len(y_test) == 0:
        raise TaskshareError(f"{where}: {len(y)} training and {len(y_test)} test examples after the split; expected "
                             f"at least one of each (more examples, or x_test and y_test arrays)")
    n = check_dense_classes(y, where, "; or list the classes to keep, e.g. classes: [10, 11, 12, 13]")
    if y_test.max() >= n:
        raise TaskshareError(f"{where}: the test labels reach {y_test.max()}, but training has classes 0..{n - 1}; "
                             f"expected test classes seen in training")
    return TaskData(x, y, x_test, y_test)
