"""`parquet: FILE`: the same manifest as csv, from a Parquet file (needs pyarrow)."""
from __future__ import annotations

from pathlib import Path

from ...errors import TaskshareError
from .base import SOURCES
from .csv import table_source


def _read_parquet(pd, file: Path):
    try:
        return pd.read_parquet(file)
    except ImportError as exc:
        raise TaskshareError(f"reading {file} needs pyarrow: pip install 'taskshare[tables]'") from exc
    except (OSError, ValueError) as exc:
        raise TaskshareError(f"{file} is not a readable Parquet file ({exc})") from None


parquet = SOURCES.register("parquet")(table_source("Parquet file", _read_parquet))
