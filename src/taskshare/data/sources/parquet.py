"""`parquet: FILE`: the same manifest as csv, from a Parquet file (needs pyarrow)."""
from __future__ import annotations

from pathlib import Path

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing
from .csv import require_pandas
from .manifest import from_frame


@SOURCES.register("parquet")
def parquet(path: str | Path, label: str | None = None, labels: list[str] | None = None, features: list[str] | None = None,
            categorical: list[str] = (), image_size=None, mode: str = "RGB", strict: bool = False,
            encoding: dict | None = None) -> SourceData:
    file = existing(path, "Parquet file")
    pd = require_pandas()
    try:
        frame = pd.read_parquet(file)
    except ImportError as exc:
        raise TaskshareError(f"reading {file} needs pyarrow: pip install 'taskshare[tables]'") from exc
    except (OSError, ValueError) as exc:
        raise TaskshareError(f"{file} is not a readable Parquet file ({exc})") from None
    return from_frame(frame, str(file), file.parent, label, labels, features, categorical,
                      image_size=image_size, mode=mode, strict=strict, encoding=encoding)
