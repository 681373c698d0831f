"""The one validation layer at the boundary: files, arrays, labels and config values are checked
where they enter, with the same messages from the command line and from Python, so nothing wrong
reaches training (where it would end in a traceback, or worse, in a plausible number).

Every check raises TaskshareError (ConfigError for config values) naming the array, task or key,
the offending value and what was expected.
"""
from __future__ import annotations

import inspect
import numbers
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .errors import ConfigError, TaskshareError

MISSING = -1   # the unknown-class marker (tasks.MISSING; repeated here so this module imports nothing above)


# ---- files and arrays ------------------------------------------------------------------------------
def read_npz(path: str | Path, wanted: Iterable[str], optional: Iterable[str] = (), where: str = "data") -> dict:
    """The named arrays of an .npz file, each numeric; object arrays are refused without unpickling.
    `wanted` must be present, `optional` is read when present."""
    path = Path(path)
    if not path.is_file():
        raise TaskshareError(f"{where} file {path} does not exist" if not path.exists()
                             else f"{where} file {path} is a folder; expected an .npz file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TaskshareError(f"{where} file {path} is not a readable .npz archive ({type(exc).__name__}); "
                             f"expected arrays saved with numpy.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise TaskshareError(f"{where} file {path} holds a single array; expected an .npz archive of named arrays")
    with archive:
        held = list(archive.files)
        absent = [k for k in wanted if k not in held]
        if absent:
            raise TaskshareError(f"{path} has no array {absent[0]!r}; it holds {sorted(held)}")
        out = {}
        for key in [*wanted, *(k for k in optional if k in held)]:
            try:
                value = archive[key]
            except ValueError:      # numpy refuses object arrays when pickles are off
                raise TaskshareError(f"array {key!r} in {path} holds Python objects (dtype object), which taskshare "
                                     f"never unpickles; expected an array of numbers") from None
            out[key] = numeric(value, f"array {key!r} in {path}")
    return out


def numeric(values: Any, name: str) -> np.ndarray:
    """A numpy array of numbers (bool, integer or float), at least one-dimensional."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TaskshareError(f"{name} has dtype {array.dtype}; expected an array of numbers")
    if array.ndim == 0:
        raise TaskshareError(f"{name} is a single number; expected an array with one entry per example")
    return array


def check_pair(x: Any, y: Any, where: str) -> None:
    """Inputs and labels: both non-empty, one label per input."""
    if len(x) == 0 or len(y) == 0:
        raise TaskshareError(f"{where} is empty ({len(x)} inputs, {len(y)} labels); expected at least one example")
    if len(x) != len(y):
        raise TaskshareError(f"{where}: {len(x)} inputs but {len(y)} labels; expected one label per input")
    if np.ndim(x) < 2:
        raise TaskshareError(f"{where}: inputs of shape {np.shape(x)}; expected one row of features per example")


# ---- labels against the task --------------------------------------------------------------------
def check_labels(task: Any, y: Any, where: str = "training data") -> None:
    """Labels fit the task's kind: integers in range or -1 (multiclass); 0/1, -1 or NaN (binary,
    multilabel); finite or NaN (regression). Shapes fit the task's outputs."""
    values = numeric(y, f"task {task.name!r}: {where} labels")
    name = f"task {task.name!r}: {where}"
    if task.kind == "multiclass":
        if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
            raise TaskshareError(f"{name} has labels of shape {values.shape}; expected one class index per example")
        flat = values.reshape(-1).astype(np.float64)
        bad = np.isnan(flat) | (flat != np.round(flat)) | (flat < MISSING) | (flat >= task.out_dim)
        if bad.any():
            raise TaskshareError(f"{name} has label {flat[bad][0]:g}; expected integers in [0, {task.out_dim - 1}] "
                                 f"or {MISSING} for unknown")
        return
    if task.kind not in ("binary", "multilabel", "regression"):
        task_check = getattr(task, "_check_other_labels", None)   # kinds added later check themselves
        if task_check:
            task_check(values, where)
        return
    columns = values.reshape(len(values), -1) if values.ndim <= 2 else values
    if columns.shape[-1] != task.out_dim:
        what = f"targets of width {columns.shape[-1]}" if task.kind == "regression" else f"{columns.shape[-1]} label columns"
        raise TaskshareError(f"{name} has {what}, expected {task.out_dim}")
    flat = columns.reshape(-1).astype(np.float64)
    if task.kind == "regression":
        if np.isinf(flat).any():
            raise TaskshareError(f"{name} has an infinite target; expected finite values or NaN for unknown")
        return
    known = ~np.isnan(flat) & (flat != MISSING)
    bad = known & (flat != 0) & (flat != 1)
    if bad.any():
        raise TaskshareError(f"{name} has label {flat[bad][0]:g}; expected 0 or 1, or {MISSING}/NaN for unknown")


def known_count(task: Any, y: Any) -> int:
    flat = numeric(y, f"task {task.name!r} labels").astype(np.float64).reshape(-1)
    known = ~np.isnan(flat)
    # -1 marks an unknown class; for a regression target it is a value like any other
    return int((known if task.kind == "regression" else known & (flat != MISSING)).sum())


def check_training_labels(task: Any, y: Any, where: str = "training data", every_class: bool = True) -> None:
    """check_labels, then: at least one known label, and (multiclass, `every_class`) every class
    seen at least once, since a class never trained on is a head that learns nothing."""
    check_labels(task, y, where)
    if known_count(task, y) == 0:
        raise TaskshareError(f"task {task.name!r}: every label in the {where} is unknown; expected at least one "
                             f"known label")
    if task.kind == "multiclass" and every_class:
        flat = numeric(y, where).reshape(-1)
        present = set(np.unique(flat[flat != MISSING]).astype(int).tolist())
        absent = [c for c in range(task.out_dim) if c not in present]
        if absent:
            shown = ", ".join(map(str, absent[:10])) + (" ..." if len(absent) > 10 else "")
            raise TaskshareError(f"task {task.name!r}: class {shown} never occurs in the {where} "
                                 f"(num_classes={task.out_dim}); expected every class 0..{task.out_dim - 1} at least once")


def class_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Integer class labels from a file's label array; floats must hold whole numbers (0.5 is no
    class), negative values other than -1 are refused before any cast hides them."""
    y = numeric(y, where)
    if y.ndim != 1:
        raise TaskshareError(f"{where} has shape {y.shape}; expected one class index per example")
    flat = y.astype(np.float64)
    bad = np.isnan(flat) | (flat != np.round(flat)) | (flat < 0)
    if bad.any():
        raise TaskshareError(f"{where} has label {flat[bad][0]:g}; expected class indices 0, 1, 2, ... "
                             f"(whole numbers, no unknown labels)")
    return y.astype(np.int64)


def check_dense_classes(y: np.ndarray, where: str, hint: str = "") -> int:
    """The number of classes of labels that must be 0..n-1 with every class present; labels 10-13
    are not 14 classes of which 10 are empty."""
    present = np.unique(y)
    n = int(present.max()) + 1
    if len(present) != n:
        absent = sorted(set(range(n)) - set(present.tolist()))
        shown = ", ".join(map(str, absent[:10])) + (" ..." if len(absent) > 10 else "")
        raise TaskshareError(f"{where} has labels {present.min()}..{present.max()} but class {shown} never occurs; "
                             f"expected classes numbered 0..n-1, each present{hint}")
    return n


# ---- models and config values ---------------------------------------------------------------------
def model_arguments(name: str, builder: Callable, args: dict, given: Iterable[str] = ("in_features", "num_outputs")) -> None:
    """Keyword arguments a model builder accepts, listed by name when one is not."""
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p not in given and params[p].kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [k for k in args if k not in allowed]
    if unknown:
        raise ConfigError.at("args", f" has {unknown[0]!r}, which model {name!r} does not take; allowed: "
                                     f"{', '.join(allowed) or 'none'}", "model")
