"""What every data source returns, and the registry that finds a reader by the key a spec names.

A spec is the same in YAML and Python: a mapping with exactly one source key (`image_folder`, `csv`,
`parquet`, `jsonl`, `hf_dataset`, `npz`) whose value is a path, plus the reader's options
(`{csv: data.csv, labels: [a, b]}`)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import ConfigError, TaskshareError
from ...registry import Registry

KINDS = ("image", "text", "table", "array")

# name -> reader(path, **options) -> SourceData
SOURCES: Registry[Callable[..., "SourceData"]] = Registry("data source")


@dataclass
class SourceData:
    """Inputs, labels per task and class names, as read from one source.

    kind: image (inputs are file paths, decoded lazily) | text (strings) | table | array (float rows).
    labels: task -> int64 class indices, -1 where the label is unknown (a blank cell); for a task
    of `label_kinds` regression, float values, NaN where unknown.
    class_names: task -> names, in index order (kept end to end: reports, predict, export); [] for
    a regression task.
    encoding: how raw values became model inputs (image size and colour mode; table columns,
    categories, means and scales), saved in the run folder so predict repeats it exactly.
    skipped: files left out as unreadable (first ones are named in the log).
    """

    kind: str
    inputs: Any
    labels: dict[str, np.ndarray]
    class_names: dict[str, list[str]]
    encoding: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    skipped: list[str] = field(default_factory=list)
    label_kinds: dict[str, str] = field(default_factory=dict)   # task -> classification | regression
    raw: Any = None   # table sources: the feature columns as read, so an encoding can be refitted on some rows

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TaskshareError(f"source kind {self.kind!r}; expected one of {KINDS}")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def tasks(self) -> list[str]:
        return list(self.labels)

    def task_labels(self, task: str | None = None) -> np.ndarray:
        task = task or self.tasks[0]
        if task not in self.labels:
            raise TaskshareError(f"{self.origin}: no label column {task!r}; it has {self.tasks}")
        return self.labels[task]

    def select(self, rows: np.ndarray) -> "SourceData":
        """The same source restricted to `rows` (indices)."""
        rows = np.asarray(rows, dtype=np.int64)
        inputs = [self.inputs[i] for i in rows] if isinstance(self.inputs, list) else self.inputs[rows]
        raw = None if self.raw is None else self.raw.iloc[rows].reset_index(drop=True)
        return SourceData(self.kind, inputs, {t: y[rows] for t, y in self.labels.items()}, self.class_names,
                          self.encoding, self.origin, self.skipped, self.label_kinds, raw)

    def kind_of(self, task: str) -> str:
        return self.label_kinds.get(task, "classification")

    def known(self, task: str) -> np.ndarray:
        """Which rows have a known label for `task` (class >= 0, or a value that is not NaN)."""
        y = self.labels[task]
        return ~np.isnan(y) if self.kind_of(task) == "regression" else y >= 0

    def dataset(self, task: str | None = None, tokenizer=None, num_workers: int = 0) -> Dataset:
        """A torch Dataset of (input, label) for one task: images decoded in __getitem__ (so DataLoader
        workers decode), texts tokenized once by `tokenizer`, rows as one in-memory tensor."""
        from ..arrays import ArrayDataset
        y = self.task_labels(task)
        if self.kind == "image":
            from .images import ImageFiles
            return ImageFiles(self.inputs, y, self.encoding["size"], self.encoding.get("mode", "RGB"),
                              num_workers=num_workers)
        if self.kind == "text":
            if tokenizer is None:
                raise TaskshareError(f"{self.origin} holds text: it needs a text model (model: {{hf: ...}}) "
                                     f"whose tokenizer turns it into token ids")
            return ArrayDataset(tokenizer(list(self.inputs)), torch.as_tensor(y), self.origin)
        return ArrayDataset(np.asarray(self.inputs, np.float32), torch.as_tensor(y), self.origin)


def read_source(spec: dict[str, Any] | SourceData, where: str = "data") -> SourceData:
    """Read the source a spec names (`{image_folder: DIR, ...}`); a SourceData passes through."""
    if isinstance(spec, SourceData):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} = {spec!r}; expected a mapping naming one source: {', '.join(SOURCES.names())}")
    keys = [k for k in spec if k in SOURCES]
    if len(keys) != 1:
        raise ConfigError(f"{where}: name exactly one source among {', '.join(SOURCES.names())}; got keys {sorted(spec)}")
    name = keys[0]
    options = {k: v for k, v in spec.items() if k != name}
    reader = SOURCES.get(name)
    try:
        return reader(spec[name], **options)
    except TypeError as exc:
        import inspect
        allowed = [p for p in inspect.signature(reader).parameters][1:]
        raise ConfigError(f"{where}: a {name} source takes the options {', '.join(allowed)}; got "
                          f"{sorted(options)} ({exc})") from None


def existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise TaskshareError(f"{what} {path} does not exist")
    return path


def encode_labels(values, column: str, classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label cells -> class indices; blank/None/NaN cells -> -1 (unknown). Class names are the
    distinct values as strings, sorted (numbers by value), unless `classes` fixes them."""
    cells = [None if is_blank(v) else label_text(v) for v in values]
    if classes is None:
        distinct = {c for c in cells if c is not None}
        classes = sorted(distinct, key=_sort_key)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for c in cells if c is not None and c not in index})
    if unknown:
        raise TaskshareError(f"label column {column!r} has values {unknown[:5]} outside its classes {classes}")
    return np.array([-1 if c is None else index[c] for c in cells], dtype=np.int64), list(classes)


def is_blank(v) -> bool:
    """An unknown cell: None, NaN, pandas' NA and NaT (a nullable integer or string column's missing
    cell, which str() made the token '<NA>'), or text of nothing but spaces."""
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    if isinstance(v, (int, np.integer)):
        return False      # the common cell, spared the look below
    # pandas is an optional extra: its NA and NaT exist only once pandas is loaded, so look, don't import
    pd = sys.modules.get("pandas")
    return pd is not None and bool(pd.api.types.is_scalar(v)) and bool(pd.isna(v))


def label_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _sort_key(c: str):
    try:
        return (0, float(c), c)
    except ValueError:
        return (1, 0.0, c)
