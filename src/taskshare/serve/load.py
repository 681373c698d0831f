"""`taskshare.load(RUN_DIR)`: the trained model of a run folder with its preprocessing, tasks and
class names, ready to predict on raw inputs (image files, texts, table rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import TaskshareError
from ..io import load_into
from ..models.backbones.spec import family
from ..tasks import Task
from .bundle import read_bundle
from .models import backbone_for, multitask_net, transfer_net


@dataclass
class LoadedRun:
    """model: inputs -> logits (a tensor for transfer runs, {task: logits} for multi-task runs), in
    eval mode, preprocessing inside (resize, normalisation); `encode` turns raw inputs into its
    input tensor (decoding images, tokenizing texts, encoding table columns)."""

    model: nn.Module
    tasks: list[Task]
    class_names: dict[str, list[str]]
    input: dict[str, Any]
    record: dict[str, Any]
    tokenizer: Any = None
    run_dir: Path = field(default_factory=Path)

    @property
    def kind(self) -> str:
        return self.input["kind"]

    def encode(self, inputs) -> torch.Tensor:
        """Raw inputs -> the model's input tensor: image paths, strings, or a table (DataFrame)."""
        enc = self.input.get("encoding", {})
        if self.kind == "image":
            from ..data.sources import decode
            return torch.stack([decode(p, tuple(enc["size"]), enc.get("mode", "RGB")) for p in inputs])
        if self.kind == "text":
            if self.tokenizer is None:
                raise TaskshareError("this run's text model has no tokenizer; pass token ids to run.model")
            return self.tokenizer(list(inputs))
        if self.kind == "table":
            from ..data.sources.table import encode
            return torch.as_tensor(encode(inputs, enc, "inputs"))
        return torch.as_tensor(np.asarray(inputs, np.float32))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class probabilities per task for an encoded batch (a regression task: its predicted values)."""
        device = next(self.model.parameters()).device
        out = self.model(x.to(device))
        if not isinstance(out, dict):
            out = {self.tasks[0].name: out}
        values = {t.name for t in self.tasks if t.kind == "regression"}
        return {t: (v.float() if t in values else torch.softmax(v.float(), dim=-1)).cpu() for t, v in out.items()}

    def predict(self, inputs, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Probabilities per task for raw inputs, decoded and run batch by batch."""
        items = inputs if not hasattr(inputs, "iloc") else None
        n = len(inputs)
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, n, batch_size):
            chunk = inputs.iloc[start:start + batch_size] if items is None else items[start:start + batch_size]
            for t, p in self.probabilities(self.encode(chunk)).items():
                parts.setdefault(t, []).append(p)
        return {t: torch.cat(v) for t, v in parts.items()}


def load(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The model a run saved (model.safetensors + run.json), rebuilt without downloading anything:
    the architecture from the recorded spec, every weight from the run's file."""
    run_dir = Path(run_dir)
    record = read_bundle(run_dir)
    tasks = [Task(t["name"], t["kind"], t.get("num_classes"), t.get("num_outputs"), t.get("metric"))
             for t in record["tasks"]]
    with torch.random.fork_rng(devices=[]):
        if record["mode"] == "multitask":
            model = multitask_net(record, tasks, pretrained=False)
        else:
            model = transfer_net(record, tasks[0], pretrained=False)
    load_into(model, run_dir / record["weights"])
    tokenizer = None
    if family(record["model"]) == "hf":
        tokenizer = backbone_for(record["model"], pretrained=False).tokenizer
    return LoadedRun(model.to(device).eval(), tasks, {t["name"]: t["class_names"] for t in record["tasks"]},
                     record["input"], record, tokenizer, run_dir)


def class_names_of(run: LoadedRun, task: str) -> Sequence[str]:
    return run.class_names[task]
