"""What a run folder keeps so its model can be used without the config: run.json (model spec,
tasks with class names, input kind and encoding, image preprocessing, the chosen strategy) next to
model.safetensors. Plain JSON and safetensors: loading never unpickles anything."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import TaskshareError
from ..io import atomic_write_bytes
from ..train.checkpoint import save

FORMAT = "taskshare-run/1"
RUN_FILE = "run.json"
MODEL_FILE = "model.safetensors"


def write_bundle(out: str | Path, model: nn.Module, info: dict[str, Any]) -> Path:
    """Save the deployable model and what using it needs; returns the run.json path."""
    out = Path(out)
    save(out / MODEL_FILE, model, {"run": RUN_FILE})
    record = {"format": FORMAT, "weights": MODEL_FILE, **info}
    path = out / RUN_FILE
    atomic_write_bytes(path, json.dumps(record, indent=2, default=str).encode())
    return path


def read_bundle(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.exists():
        hint = " (runs of built-in data with npz/mnist1d configs keep weights under models/ only)" \
            if (run_dir / "results.json").exists() else ""
        raise TaskshareError(f"{run_dir} is not a usable run folder: {path} is missing{hint}; "
                             f"run 'taskshare run' with a data source (image_folder, csv, ...) to make one")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TaskshareError(f"{path} is not valid JSON ({exc})") from None
    if record.get("format") != FORMAT:
        raise TaskshareError(f"{path} has format {record.get('format')!r}; expected {FORMAT!r}")
    return record
