"""Label columns of a table -> class indices or regression values, with what each label is saying
itself: `kind: classification | regression` on the source (every label column), or a mapping
`kind: {column: regression, ...}`. Without it, a numeric column that looks like a measurement rather
than a set of classes stops the read: hundreds of one-example classes train nothing useful, and
saying so before any training beats a model of 159 classes at 4% accuracy."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError, TaskshareError
from .base import encode_labels, is_blank
from .table import few_strays, read_cells, tokens

log = logging.getLogger("taskshare")

LABEL_KINDS = ("classification", "regression")
# A numeric column with more distinct values than this share of its known rows (and more than
# MANY_VALUES of them) reads as a measurement, not as classes.
DISTINCT_SHARE, MANY_VALUES = 0.2, 20


def label_kinds(kind: Any, names: Sequence[str], where: str) -> dict[str, str | None]:
    """Each label column's declared kind (None: not declared)."""
    if kind is None:
        return {n: None for n in names}
    if isinstance(kind, str):
        kind = {n: kind for n in names}
    if not isinstance(kind, dict):
        raise ConfigError(f"{where}: kind = {kind!r}; expected classification, regression or a mapping "
                          f"label column -> one of them")
    stray = [k for k in kind if k not in names]
    if stray:
        raise ConfigError(f"{where}: kind names {stray[0]!r}, which is not a label column; the label columns "
                          f"are {list(names)}")
    for column, value in kind.items():
        if value not in LABEL_KINDS:
            raise ConfigError(f"{where}: kind of {column!r} = {value!r}; expected classification or regression")
    return {n: kind.get(n) for n in names}


def read_label(values: Sequence[Any], column: str, kind: str | None, where: str,
               classes: list[str] | None = None) -> tuple[np.ndarray, list[str], str]:
    """(labels, class names, kind) of one column: regression values are float, NaN where unknown;
    classes are int64 indices, -1 where unknown. A column with no known value stops here."""
    values = list(values)
    if all(is_blank(v) for v in values):
        raise TaskshareError(f"{where}: label column {column!r} has no known value (every cell is blank); "
                             f"expected at least some labels in it")
    if kind != "classification" and classes is None:
        values = _strays_unknown(values, column, kind, where)
    if kind == "regression":
        return regression_values(values, column, where), [], "regression"
    if kind is None and classes is None:
        _refuse_measurements(values, column, where)
    y, names = encode_labels(values, column, classes)
    return y, names, "classification"


def _strays_unknown(values: list[Any], column: str, kind: str | None, where: str) -> list[Any]:
    """A numeric label column with a few cells that are not numbers (`?`, `n/a`: at most STRAY_SHARE of
    its known cells, read as feature cells are, by table.read_cells): those cells are unknown labels and
    the rest its numbers. Left as text, one `?` made the column's numbers class names and skipped the
    check below (200 prices read as 146 classes), or made a third class of a 0/1 label."""
    x, stray = read_cells(values)
    tokens = sorted({str(v).strip() for v, s in zip(values, stray) if s})
    if not tokens or not few_strays(x, stray) or (kind is None and _bools(values, x)):
        return values          # all numbers, or text labels (class names)
    if kind == "regression":   # declared: the hint below, to make each value a class, contradicts it
        log.warning("%s: label column %r (kind: regression) holds %d cell(s) that are not numbers, %s: read as "
                    "unknown labels", where, column, int(stray.sum()), tokens[:5])
    else:
        log.warning("%s: label column %r is numeric but for %s: read as unknown labels; declare kind: "
                    "classification on the source to make every value a class instead", where, column, tokens[:5])
    return [None if np.isnan(n) else float(n) for n in x]


def _bools(values: list[Any], x: np.ndarray) -> bool:
    """Whether every cell read as a number is a bool (JSON true/false): pandas reads them as 1/0, but
    they are a yes/no label, whose classes are 'False' and 'True' with or without a stray cell beside
    them (read alone, a clean test file's bools are those two classes). A stray among them is then one
    class more, as in any column of text labels."""
    known = [v for v, n in zip(values, x) if not np.isnan(n)]
    return bool(known) and all(isinstance(v, (bool, np.bool_)) for v in known)


def regression_values(values: list[Any], column: str, where: str) -> np.ndarray:
    """A regression label column's cells as float32, NaN where blank; a cell that is not a number, or
    infinity, stops, named."""
    out, stray = read_cells(values)
    bad = tokens(values, stray)
    if bad:
        raise TaskshareError(f"{where}: label column {column!r} is kind: regression but holds values that are "
                             f"not numbers: {bad[:5]}; expected numbers or blank cells (unknown)")
    if np.isinf(out).any():
        row = int(np.flatnonzero(np.isinf(out))[0])
        raise TaskshareError(f"{where}: label column {column!r} holds {out[row]} in data row {row + 1}; expected "
                             f"finite numbers or blank cells (unknown)")
    return out.astype(np.float32)


def _refuse_measurements(values: list[Any], column: str, where: str) -> None:
    known = [v for v in values if not is_blank(v)]
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in known):
        return   # text labels are class names
    x = np.asarray(known, np.float64)
    ids = np.unique(x)
    distinct = len(ids)
    fractional = bool(np.any(x != np.round(x)))
    if not fractional and _class_ids(ids):
        if distinct > MANY_VALUES and distinct > DISTINCT_SHARE * len(x):   # a count 0..30 looks the same
            log.warning("%s: label column %r holds the whole numbers %d..%d (%d rows), read as %d classes; if "
                        "they are counts or measurements, declare kind: regression on the source",
                        where, column, int(ids[0]), int(ids[-1]), len(x), distinct)
        return
    if fractional or (distinct > MANY_VALUES and distinct > DISTINCT_SHARE * len(x)):
        why = " (not all whole numbers)" if fractional else ""
        raise TaskshareError(f"{where}: label column {column!r} holds {distinct} distinct numbers in {len(x)} rows{why}: "
                             f"a measurement rather than classes? Say which on the source: kind: regression "
                             f"(predict the value) or kind: classification (each distinct value a class)")


def _class_ids(distinct: np.ndarray) -> bool:
    """Whole numbers 0..n-1 or 1..n, every one present: class ids as few-shot files write them (30 ids
    of 4 rows each, 100 of 3), which the distinct-share rule alone took for a measurement."""
    return distinct[0] in (0, 1) and distinct[-1] - distinct[0] == len(distinct) - 1
