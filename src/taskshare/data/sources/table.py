"""Feature columns -> one float matrix: numeric columns standardised, categorical ones one-hot. The
encoding (columns, categories, means, scales) is data, saved with a run, so predict encodes new rows
exactly as training did."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ...errors import TaskshareError
from .base import is_blank

log = logging.getLogger("taskshare")


# A text-valued column whose cells are numbers but for at most this share of its non-blank cells
# (a `?`, `n/a`) is a numeric column with a few unknowns, not a category per distinct number.
STRAY_SHARE = 0.05


def fit_encoding(frame, columns: Sequence[str], categorical: Sequence[str] = (), where: str = "table") -> dict[str, Any]:
    """How each column becomes features: text-valued (or listed) columns are categorical."""
    out = []
    for name in columns:
        values = frame[name]
        if name in categorical or not (_numeric(values) or _mostly_numbers(values)):
            cats = sorted({str(v) for v in values if not is_blank(v)})
            if name not in categorical:
                _warn_numbers_as_categories(name, values, cats, where)
            out.append({"name": name, "type": "categorical", "categories": cats})
        else:   # encode() warns
            out.append(_numeric_column(name, *read_numbers(values, name, where, quiet=True)))
    return {"columns": out}


def refit(frame, encoding: dict[str, Any], where: str = "table") -> dict[str, Any]:
    """The same columns and column types, their means, scales and categories fitted on `frame` (the
    training rows), so held-out rows do not shape the encoding that scores them."""
    out = []
    for col in encoding["columns"]:
        values = frame[col["name"]]
        if col["type"] == "numeric":
            x, stray = read_numbers(values, col["name"], where, quiet=True)
            out.append(_numeric_column(col["name"], x, sorted(set(col.get("unknown", [])) | set(stray))))
        else:
            out.append({**col, "categories": sorted({str(v) for v in values if not is_blank(v)})})
    return {**encoding, "columns": out}


def _numeric_column(name: str, x: np.ndarray, unknown: Sequence[str] = ()) -> dict[str, Any]:
    """unknown: the tokens (`?`) read as unknown here, saved so predict reads them as unknown again."""
    mean = float(np.nanmean(x)) if np.isfinite(x).any() else 0.0
    std = float(np.nanstd(x)) if np.isfinite(x).any() else 1.0
    column = {"name": name, "type": "numeric", "mean": mean, "std": std if std > 0 else 1.0}
    return {**column, "unknown": list(unknown)} if unknown else column


def read_cells(values) -> tuple[np.ndarray, np.ndarray]:
    """The one reading of cells as numbers, for feature and label columns alike: (float64, NaN where a
    cell is no number; True where a cell is a stray token, neither blank nor a number). pandas reads
    ' 3 ' and '1e3' as numbers, 'inf' too (stopped later, naming its row), a bool as 0/1 (a feature
    of bools is numeric; a label column of them is classes, which labels.py decides); the text
    'nan' is how pandas and numpy write an unknown, so it is blank, not a stray token counted against
    STRAY_SHARE."""
    import pandas as pd
    cells = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    x = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    stray = np.zeros(len(x), dtype=bool)
    unread = np.flatnonzero(np.isnan(x))      # only these can be strays: a float column costs no str() per cell
    stray[unread] = [not (is_blank(v) or str(v).strip().lower() == "nan") for v in cells.iloc[unread]]
    return x, stray


def few_strays(x: np.ndarray, stray: np.ndarray) -> bool:
    """Whether cells (as read_cells reads them) are numbers but for at most STRAY_SHARE of the known ones."""
    known = int(np.count_nonzero(stray | ~np.isnan(x)))
    return known > 0 and np.count_nonzero(stray) <= STRAY_SHARE * known


def strays(values) -> list[str]:
    """The distinct cells of a column that are neither blank nor numbers."""
    return tokens(values, read_cells(values)[1])


def tokens(values, stray: np.ndarray) -> list[str]:
    """The distinct cells of `values` that `stray` (read_cells' mask) marks."""
    return sorted({str(v) for v, s in zip(values, stray) if s})


def numbers(values, name: str, where: str, quiet: bool = False, unknown: Sequence[str] = ()) -> np.ndarray:
    """A numeric column as float64, NaN where blank. Cells that are not numbers (`?`) are read as
    unknown, with a warning naming them; infinity stops, naming the column and row. A column of nothing
    but such cells stops too (text where numbers were trained), unless training read every one of
    them as unknown (`unknown`): a one-row file holding `?` is then an unknown value, as in training."""
    return read_numbers(values, name, where, quiet, unknown)[0]


def read_numbers(values, name: str, where: str, quiet: bool = False,
                 unknown: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """numbers(), and the stray tokens it read as unknown, from one reading of the cells."""
    x, unread = read_cells(values)
    stray = tokens(values, unread)
    new = [t for t in stray if t not in set(unknown)]
    if new and len(stray) == len({str(v) for v in values if not is_blank(v)}):
        raise TaskshareError(f"{where}: column {name!r} was numeric in training but holds text here ({stray[:5]})")
    if stray and not quiet:
        log.warning("%s: column %r is numeric, but holds %s: read as unknown (the training mean); list it under "
                    "categorical: to treat every value as a category instead", where, name, stray[:5])
    if np.isinf(x).any():
        row = int(np.flatnonzero(np.isinf(x))[0])
        raise TaskshareError(f"{where}: column {name!r} holds {x[row]} in data row {row + 1} (row 1 is the first "
                             f"below the header); expected finite numbers, or a blank cell for unknown")
    return x, stray


def encode(frame, encoding: dict[str, Any], where: str = "table", quiet: bool = False,
           reported: dict[str, Any] | None = None) -> np.ndarray:
    """Rows -> float32 features. A blank numeric cell becomes the training mean (0 after scaling); a
    category not seen in training gets all-zero indicators, and both are counted in the log (unless
    `quiet`: rows already reported once). `reported`: the encoding the cells were read and reported
    under once already; only what this one finds new, categories unseen here but not there, is said."""
    parts, unseen, blanks = [], {}, {}
    for col in encoding["columns"]:
        name = col["name"]
        if name not in frame.columns:
            raise TaskshareError(f"{where} has no column {name!r}; the model was trained on columns "
                                 f"{[c['name'] for c in encoding['columns']]}")
        values = frame[name]
        if col["type"] == "numeric":
            x = numbers(values, name, where, quiet or reported is not None, col.get("unknown", ()))
            if np.isnan(x).any():
                blanks[name] = int(np.isnan(x).sum())
            x = np.where(np.isfinite(x), (x - col["mean"]) / col["std"], 0.0)
            parts.append(x[:, None])
        else:
            index = {c: i for i, c in enumerate(col["categories"])}
            onehot = np.zeros((len(values), len(index)))
            for r, v in enumerate(values):
                if is_blank(v):
                    continue
                i = index.get(str(v))
                if i is None:
                    unseen.setdefault(name, set()).add(str(v))
                else:
                    onehot[r, i] = 1.0
            parts.append(onehot)
    if blanks and not quiet and reported is None:
        log.info("%s: unknown numeric cells (blank or not a number) set to the training mean: %s", where,
                 ", ".join(f"{n} {c}" for n, c in blanks.items()))
    for name, cats in ({} if quiet else unseen).items():
        cats = {c for c in cats if not _unseen_in(reported, name, c)}
        if not cats:
            continue
        log.warning("%s: column %r has categories not seen in training (encoded as none): %s", where, name,
                    sorted(cats)[:5])
    return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)


def _unseen_in(encoding: dict[str, Any] | None, name: str, value: str) -> bool:
    """Whether `encoding` had column `name` as categories without `value` (so it was said there)."""
    col = next((c for c in (encoding or {}).get("columns", ()) if c["name"] == name), None)
    return col is not None and col["type"] == "categorical" and value not in col["categories"]


def _numeric(values) -> bool:
    import pandas as pd
    return bool(pd.api.types.is_numeric_dtype(values.dtype)) and not pd.api.types.is_bool_dtype(values.dtype)


def _warn_numbers_as_categories(name: str, values, cats: list[str], where: str) -> None:
    """A column of many numbers and too many other tokens to be read as numeric becomes one
    indicator per distinct value: say so, since a numeric column was most likely meant."""
    cells = [v for v in values if not is_blank(v)]
    # most cells numbers: whether 300 prices or a 1-5 rating, one-hot is most likely not what was meant
    if len(cells) and np.mean(~np.isnan(read_cells(cells)[0])) > 0.5:
        words = [c for c, n in zip(cats, read_cells(cats)[0]) if np.isnan(n)]
        log.warning("%s: column %r is read as %d categories, most of its cells numbers; its other values %s are more "
                    "than %d%% of its cells: clean them (blank = unknown) to read it as numeric, or list it under "
                    "categorical: to keep the categories without this warning", where, name, len(cats), words[:5],
                    round(STRAY_SHARE * 100))


def _mostly_numbers(values) -> bool:
    """Text cells that are numbers but for a few stray tokens."""
    return few_strays(*read_cells(values))
