"""`taskshare predict RUN_DIR INPUTS`: one row per input with, for every task, the predicted class
name, its probability and the probability of every class. INPUTS: a folder of images, one image, a
text file (image runs: one path a line; text runs: one text a line), a CSV (a `path`, `text` or the
feature columns) or a JSONL file of texts. A CSV that also holds a task's label column is checked:
labels the model never saw are reported, not guessed."""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import TaskshareError
from ..io import atomic_write_bytes
from .load import LoadedRun

log = logging.getLogger("taskshare")


def _read_table_inputs(run: LoadedRun, path: Path, suffix: str) -> tuple[list[str], Any, Any]:
    """A CSV or Parquet file: image paths, texts or feature columns, as the run's input kind says."""
    from ..data.sources.csv import require_pandas
    from ..data.sources.manifest import text_cells
    pd = require_pandas()
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    if run.kind == "image":
        column = run.input["encoding"].get("path_column", "path")
        if column not in frame.columns:
            raise TaskshareError(f"{path} has no {column!r} column of image files; columns: {list(frame.columns)}")
        files = [str(p if Path(str(p)).is_absolute() else path.parent / str(p)) for p in frame[column]]
        _check_files(files, path)
        return files, files, frame
    if run.kind == "text":
        column = run.input["encoding"].get("text_column", "text")
        if column not in frame.columns:
            raise TaskshareError(f"{path} has no {column!r} column; columns: {list(frame.columns)}")
        texts = text_cells(frame[column])   # a blank cell is "", as training read it
        return texts, texts, frame
    return [str(i) for i in range(len(frame))], frame, frame


def read_inputs(run: LoadedRun, inputs: str | Path) -> tuple[list[str], Any, Any]:
    """(row names, what run.encode takes, the table read, if any)."""
    path = Path(inputs)
    if not path.exists():
        raise TaskshareError(f"inputs {path} do not exist; expected a folder, a file list, a CSV or a text file")
    kind = run.kind
    if path.is_dir():
        if kind != "image":
            raise TaskshareError(f"{path} is a folder, but this run's model reads {kind}; give a CSV or text file")
        from ..data.sources.image_folder import list_images
        files = [str(p) for p in list_images(path)]
        if not files:
            raise TaskshareError(f"{path} holds no image files")
        return files, files, None
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        return _read_table_inputs(run, path, suffix)
    if suffix == ".jsonl":
        from ..data.sources.manifest import text_cells
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        column = run.input.get("encoding", {}).get("text_column", "text")
        texts = text_cells([r.get(column) for r in rows])   # null or absent: "", as training read it
        return texts, texts, None
    if kind == "image" and suffix != ".txt":
        return [str(path)], [str(path)], None
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if kind == "image":
        files = [str(p if Path(p).is_absolute() else path.parent / p) for p in lines]
        _check_files(files, path)
        return files, files, None
    if kind == "text":
        return lines, lines, None
    raise TaskshareError(f"this run's model reads {kind} rows; give a CSV with its feature columns, not {path.name}")


def _check_files(files: list[str], listed_in: Path) -> None:
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise TaskshareError(f"{listed_in} names {len(missing)} file(s) that do not exist: {', '.join(missing[:5])}")


def unknown_labels(run: LoadedRun, frame) -> dict[str, list[str]]:
    """Label values in the inputs' task columns that are not among the task's classes."""
    if frame is None:
        return {}
    out = {}
    from ..data.sources.base import is_blank, label_text
    values = {t.name for t in run.tasks if t.kind == "regression"}
    for task, names in run.class_names.items():
        if task in frame.columns and task not in values:
            seen = {label_text(v) for v in frame[task] if not is_blank(v)}
            extra = sorted(seen - set(names))
            if extra:
                out[task] = extra
    return out


def predict_rows(run: LoadedRun, inputs: str | Path, batch_size: int = 64) -> tuple[list[str], list[dict[str, Any]]]:
    names, raw, frame = read_inputs(run, inputs)
    for task, extra in unknown_labels(run, frame).items():
        log.warning("%s: column %r holds label(s) the model was not trained on: %s; it can only predict %s",
                    inputs, task, extra[:10], run.class_names[task])
    probs = run.predict(raw, batch_size)
    values = {t.name for t in run.tasks if t.kind == "regression"}   # one predicted value, no classes
    header = ["input"]
    for task in run.class_names:
        header += [task] if task in values else [task, f"{task}_probability"] + [f"{task}:{c}" for c in run.class_names[task]]
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"input": name}
        for task, classes in run.class_names.items():
            p = probs[task][i]
            if task in values:
                row[task] = round(float(p.reshape(-1)[0]), 6)
                continue
            k = int(p.argmax())
            row[task], row[f"{task}_probability"] = classes[k], round(float(p[k]), 6)
            row.update({f"{task}:{c}": round(float(v), 6) for c, v in zip(classes, p.tolist())})
        rows.append(row)
    return header, rows


def write_predictions(run: LoadedRun, inputs: str | Path, out: str | Path, batch_size: int = 64) -> Path:
    header, rows = predict_rows(run, inputs, batch_size)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    out = Path(out)
    atomic_write_bytes(out, buffer.getvalue().encode())
    return out
