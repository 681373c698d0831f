"""`csv: FILE`: a manifest of images (`path`), texts (`text`) or feature columns, with label columns."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...errors import TaskshareError, require
from .base import SOURCES, SourceData, existing
from .manifest import from_frame


def require_pandas():
    return require("pandas", "tables", "CSV, Parquet and JSONL sources need pandas")


def table_source(what: str, read: Callable[[Any, Path], Any]) -> Callable[..., SourceData]:
    """A manifest source whose file `read(pandas, file)` turns into a DataFrame: CSV and Parquet
    differ only there, and share every option below."""
    def source(path: str | Path, label: str | None = None, labels: list[str] | None = None,
               features: list[str] | None = None, categorical: list[str] = (), image_size=None, mode: str = "RGB",
               strict: bool = False, encoding: dict | None = None, kind=None) -> SourceData:
        file = existing(path, what)
        return from_frame(read(require_pandas(), file), str(file), file.parent, label, labels, features, categorical,
                          image_size=image_size, mode=mode, strict=strict, encoding=encoding, kind=kind)
    return source


def _read_csv(pd, file: Path):
    try:
        return pd.read_csv(file, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TaskshareError(f"{file} is not a readable CSV file ({exc})") from None


csv = SOURCES.register("csv")(table_source("CSV file", _read_csv))
