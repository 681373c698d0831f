"""`jsonl: FILE`: one JSON object a line, a `text` field and label fields (null or absent: unknown; a
label field that no record has is refused, naming the fields seen)."""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing
from .csv import require_pandas
from .manifest import from_frame


@SOURCES.register("jsonl")
def jsonl(path: str | Path, label: str | None = None, labels: list[str] | None = None, text: str = "text",
          kind=None) -> SourceData:
    file = existing(path, "JSONL file")
    rows = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskshareError(f"{file} line {number} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise TaskshareError(f"{file} line {number}: expected an object, got {type(row).__name__}")
        rows.append(row)
    if not rows:
        raise TaskshareError(f"{file} has no rows")
    frame = require_pandas().DataFrame(rows)
    if text not in frame.columns:
        raise TaskshareError(f"{file}: no {text!r} field; fields: {list(frame.columns)}")
    # a field some records lack is unknown there (pandas leaves NaN); one no record has is a typo
    return from_frame(frame, str(file), file.parent, label, labels, text_column=text, features=None, kind=kind)
