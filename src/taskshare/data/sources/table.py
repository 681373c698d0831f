"""Feature columns -> one float matrix: numeric columns standardised, categorical ones one-hot. The
encoding (columns, categories, means, scales) is data, saved with a run, so predict encodes new rows
exactly as training did."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ...errors import TaskshareError

log = logging.getLogger("taskshare")


def fit_encoding(frame, columns: Sequence[str], categorical: Sequence[str] = ()) -> dict[str, Any]:
    """How each column becomes features: text-valued (or listed) columns are categorical."""
    out = []
    for name in columns:
        values = frame[name]
        if name in categorical or not _numeric(values):
            cats = sorted({str(v) for v in values if not _missing(v)})
            out.append({"name": name, "type": "categorical", "categories": cats})
        else:
            x = values.to_numpy(dtype=np.float64)
            mean = float(np.nanmean(x)) if np.isfinite(x).any() else 0.0
            std = float(np.nanstd(x)) if np.isfinite(x).any() else 1.0
            out.append({"name": name, "type": "numeric", "mean": mean, "std": std if std > 0 else 1.0})
    return {"columns": out}


def encode(frame, encoding: dict[str, Any], where: str = "table") -> np.ndarray:
    """Rows -> float32 features. A blank numeric cell becomes the training mean (0 after scaling); a
    category not seen in training gets all-zero indicators, and both are counted in the log."""
    parts, unseen = [], {}
    for col in encoding["columns"]:
        name = col["name"]
        if name not in frame.columns:
            raise TaskshareError(f"{where} has no column {name!r}; the model was trained on columns "
                                 f"{[c['name'] for c in encoding['columns']]}")
        values = frame[name]
        if col["type"] == "numeric":
            try:
                x = values.to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                raise TaskshareError(f"{where}: column {name!r} was numeric in training but holds text here") from None
            x = np.where(np.isfinite(x), (x - col["mean"]) / col["std"], 0.0)
            parts.append(x[:, None])
        else:
            index = {c: i for i, c in enumerate(col["categories"])}
            onehot = np.zeros((len(values), len(index)))
            for r, v in enumerate(values):
                if _missing(v):
                    continue
                i = index.get(str(v))
                if i is None:
                    unseen.setdefault(name, set()).add(str(v))
                else:
                    onehot[r, i] = 1.0
            parts.append(onehot)
    for name, cats in unseen.items():
        log.warning("%s: column %r has categories not seen in training (encoded as none): %s", where, name,
                    sorted(cats)[:5])
    return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)


def _numeric(values) -> bool:
    import pandas as pd
    return bool(pd.api.types.is_numeric_dtype(values.dtype)) and not pd.api.types.is_bool_dtype(values.dtype)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())
