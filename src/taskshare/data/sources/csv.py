"""`csv: FILE`: a manifest of images (`path`), texts (`text`) or feature columns, with label columns."""
from __future__ import annotations

from pathlib import Path

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing
from .manifest import from_frame


def require_pandas():
    try:
        import pandas
    except ImportError as exc:
        raise TaskshareError("CSV, Parquet and JSONL sources need pandas: pip install 'taskshare[tables]'") from exc
    return pandas


@SOURCES.register("csv")
def csv(path: str | Path, label: str | None = None, labels: list[str] | None = None, features: list[str] | None = None,
        categorical: list[str] = (), image_size=None, mode: str = "RGB", strict: bool = False,
        encoding: dict | None = None) -> SourceData:
    file = existing(path, "CSV file")
    pd = require_pandas()
    try:
        frame = pd.read_csv(file, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TaskshareError(f"{file} is not a readable CSV file ({exc})") from None
    return from_frame(frame, str(file), file.parent, label, labels, features, categorical,
                      image_size=image_size, mode=mode, strict=strict, encoding=encoding)
