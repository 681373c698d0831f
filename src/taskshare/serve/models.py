"""The one place that turns a run's model record into modules, for training and for loading, so a
loaded model has exactly the architecture that was trained."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import TaskshareError
from ..models import HardSharing, build_model, transfer_model
from ..models.backbones.spec import build_backbone, family, restore_preprocessing
from ..tasks import Task


def example_input(input_info: dict[str, Any], rows: int = 2) -> torch.Tensor:
    """A zero batch shaped like the model's inputs (sizes heads, traces exports)."""
    kind, enc = input_info["kind"], input_info.get("encoding", {})
    if kind == "image":
        channels = 1 if enc.get("mode") == "L" else 3
        return torch.zeros(rows, channels, *enc["size"])
    if kind == "text":
        return torch.zeros(rows, int(input_info.get("max_length", 128)), dtype=torch.long)
    return torch.zeros(rows, int(input_info["features"]))


def backbone_for(spec: dict[str, Any], pretrained: bool, preprocessing: dict | None = None):
    backbone = build_backbone(spec, pretrained)
    restore_preprocessing(backbone, preprocessing)
    return backbone


def builtin_net(spec: dict[str, Any], input_info: dict[str, Any], outputs: int) -> nn.Module:
    """A built-in model sized for these inputs: table width, or image channels."""
    example = example_input(input_info)
    width = example.shape[1] if input_info["kind"] in ("image", "table", "array") else None
    if width is None:
        raise TaskshareError(f"built-in model {spec.get('name')!r} cannot read {input_info['kind']} inputs; "
                             f"use a text model (model: {{hf: ...}})")
    return build_model(spec["name"], int(width), outputs, **spec.get("args", {}))


def builtin_trunk(spec: dict[str, Any], input_info: dict[str, Any]) -> nn.Module:
    """A fresh built-in trunk (the model without its output layer) for multi-task heads."""
    from ..models.zoo import trunk_factory
    return trunk_factory(spec["name"], spec.get("args", {}), example_input(input_info))()


def transfer_net(record: dict[str, Any], task: Task, source_net: nn.Module | None = None,
                 pretrained: bool = False) -> nn.Module:
    """The TrunkHead of a transfer run: a pretrained family's trunk with the task's head, or the
    built-in model pretrained on the source with its head replaced."""
    spec = record["model"]
    if family(spec) is not None:
        return backbone_for(spec, pretrained, record.get("preprocessing")).with_head(task)
    if source_net is None:
        source_net = builtin_net(spec, record["input"], int(record["source_outputs"]))
    return transfer_model(source_net, task, example=example_input(record["input"]))


def multitask_net(record: dict[str, Any], tasks: list[Task], pretrained: bool = False) -> HardSharing:
    spec = record["model"]
    if family(spec) is not None:
        trunk = backbone_for(spec, pretrained, record.get("preprocessing")).trunk
    else:
        trunk = builtin_trunk(spec, record["input"])
    return HardSharing(trunk, tasks, example_input(record["input"]))

