"""A table of rows -> SourceData, shared by the csv, parquet, jsonl and hf_dataset readers. The
inputs are a `path` column (image files, relative to the manifest's folder), a `text` column, or
feature columns; one or several label columns, a blank cell being an unknown label."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import TaskshareError
from .base import SourceData, is_blank
from .image_folder import parse_size
from .images import MODES, scan
from .labels import label_kinds, read_label
from .table import encode, fit_encoding


def label_columns(frame, label: str | None, labels: Sequence[str] | None, where: str) -> list[str]:
    if label is not None and labels is not None:
        raise TaskshareError(f"{where}: give 'label' (one column) or 'labels' (several), not both")
    names = list(labels) if labels is not None else [label or "label"]
    missing = [n for n in names if n not in frame.columns]
    if missing:   # every one named: a test file lacking two columns is fixed in one go
        what = f"label column {missing[0]!r}" if len(missing) == 1 else f"label columns {missing}"
        raise TaskshareError(f"{where} has no {what}; its columns: {list(frame.columns)}")
    return names


def from_frame(frame, where: str, base: Path, label: str | None = None, labels: Sequence[str] | None = None,
               features: Sequence[str] | None = None, categorical: Sequence[str] = (), path_column: str = "path",
               text_column: str = "text", image_size=None, mode: str = "RGB", strict: bool = False,
               class_names: dict[str, list[str]] | None = None, encoding: dict | None = None,
               kind=None) -> SourceData:
    """encoding: a table encoding saved by an earlier read (a training set's), applied as it is
    instead of fitting one, so a test table is scaled by the training statistics.
    kind: classification | regression, for every label column or per column ({col: regression}); or
    `labels` as a mapping column -> kind."""
    if isinstance(labels, dict):   # labels: {price: regression, colour: classification}
        if kind is not None:
            raise TaskshareError(f"{where}: give each label's kind in 'labels' or in 'kind', not both")
        labels, kind = list(labels), dict(labels)
    names = label_columns(frame, label, labels, where)
    if len(frame) == 0:
        raise TaskshareError(f"{where} has no rows")
    ys, classes, kinds = {}, {}, {}
    for n, declared in label_kinds(kind, names, where).items():
        ys[n], classes[n], kinds[n] = read_label(frame[n].tolist(), n, declared, where, (class_names or {}).get(n))
    if features is None and path_column in frame.columns:
        return replace(_images(frame, where, base, path_column, ys, classes, image_size, mode, strict), label_kinds=kinds)
    if features is None and text_column in frame.columns:
        return SourceData("text", text_cells(frame[text_column]), ys, classes, {"text_column": text_column}, where,
                          label_kinds=kinds)
    columns = list(features) if features is not None else [c for c in frame.columns if c not in names]
    if encoding is not None:
        columns = [c["name"] for c in encoding["columns"]]
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        what = f"feature column {absent[0]!r}" if len(absent) == 1 else f"feature columns {absent}"
        raise TaskshareError(f"{where} has no {what}; its columns: {list(frame.columns)}")
    if not columns:
        raise TaskshareError(f"{where}: no input column; expected {path_column!r} (image files), {text_column!r} "
                             f"or feature columns besides the labels {names}")
    encoding = encoding or fit_encoding(frame, columns, categorical, where)
    return SourceData("table", encode(frame, encoding, where), ys, classes, encoding, where, label_kinds=kinds,
                      raw=frame[columns].reset_index(drop=True))


def text_cells(values) -> list[str]:
    """Text cells as strings, a blank (None, NaN, pandas' NA) as "": training and predict read them alike."""
    return ["" if not isinstance(v, str) and is_blank(v) else str(v) for v in values]


def _images(frame, where, base, column, ys, classes, image_size, mode, strict) -> SourceData:
    if mode not in MODES:
        raise TaskshareError(f"mode {mode!r}; expected one of {MODES}")
    paths = [(base / str(p)) if not Path(str(p)).is_absolute() else Path(str(p)) for p in frame[column]]
    missing = [(i, p) for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        shown = "; ".join(f"row {i + 2}: {p}" for i, p in missing[:5])  # +2: the header is line 1
        raise TaskshareError(f"{where}: {len(missing)} row(s) name a file that does not exist ({shown}"
                             f"{' ...' if len(missing) > 5 else ''})")
    good, bad = scan(paths, strict, f"images of {where}")
    keep = np.isin(np.array([str(p) for p in paths]), np.array([str(p) for p in good]))
    return SourceData("image", [str(p) for p in good], {n: y[keep] for n, y in ys.items()}, classes,
                      {"size": parse_size(image_size), "mode": mode, "path_column": column}, where, [str(p) for p in bad])
