"""torchvision classification models: ResNet, MobileNet, EfficientNet, ViT and the rest of
`torchvision.models`, with their own preprocessing and layer groups by stage."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ...errors import TaskshareError
from ...io import load_into, load_tensors
from ..surgery import find_head, split_head
from .base import Backbone, ImagePreprocess, PreprocessedTrunk, module_groups, require

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _weights_enum(models, name: str, weights: str | None):
    if weights is None or Path(str(weights)).suffix in (".pth", ".pt", ".safetensors"):
        return None
    enum = models.get_model_weights(name)
    try:
        return enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except KeyError:
        raise TaskshareError(f"{name} has no weights {weights!r}; expected DEFAULT, a path, or one of "
                             f"{[w.name for w in enum]}") from None


def _stage_of(name: str) -> str:
    """The stage a parameter belongs to, from its name (per torchvision family)."""
    m = re.match(r"(layer\d+)\.", name)                      # ResNet, ResNeXt, Wide ResNet
    if m:
        return m.group(1)
    m = re.match(r"encoder\.layers\.encoder_layer_(\d+)\.", name)  # ViT
    if m:
        return f"block{int(m.group(1)):03d}"
    m = re.match(r"features\.(\d+)\.", name)                # MobileNet, EfficientNet, VGG, ConvNeXt
    if m:
        return f"features{int(m.group(1)):03d}"
    if name.startswith(("encoder.ln", "classifier", "heads", "avgpool", "fc")):
        return "zz_top"
    return "aa_stem"


def stage_groups(net: nn.Module, max_groups: int = 8) -> list[list[str]]:
    """Parameter names grouped by stage in input-to-output order, merged into at most `max_groups`
    contiguous groups (MobileNetV2's 19 feature blocks become 8 groups)."""
    stages: dict[str, list[str]] = {}
    for name, _ in net.named_parameters():
        stages.setdefault(_stage_of(name), []).append(name)
    ordered = [stages[k] for k in sorted(stages)]
    if len(ordered) <= max_groups:
        return ordered
    size = len(ordered) / max_groups
    return [sum(ordered[round(i * size):round((i + 1) * size)], []) for i in range(max_groups)]


def torchvision_backbone(name: str, weights: str | Path | None = None, max_groups: int = 8,
                         image_size: int | None = None) -> Backbone:
    """A torchvision model without its classifier.

    weights: None (random init), "DEFAULT" or an enum name (downloads where the network allows), or a
    local checkpoint path (.pth read with weights_only=True, or .safetensors). image_size overrides
    the weights' crop size (smaller is faster; accuracy may drop).
    """
    models = require("torchvision.models", "vision")
    enum = _weights_enum(models, name, None if weights is None else str(weights))
    try:
        net = models.get_model(name, weights=enum)
    except ValueError as exc:
        raise TaskshareError(f"unknown torchvision model {name!r}: {exc}") from None
    except OSError as exc:   # URLError, a refused connection, a full disk: offline is the common case
        raise TaskshareError(f"the {name} weights {weights!r} could not be fetched ({exc}); give a local file "
                             f"instead, the key 'weights' set to a path: {{torchvision: {name}, weights: "
                             f"path/to/{name}.pth}} (.pth, .pt or .safetensors)") from None
    if weights is not None and enum is None:
        load_into(net, load_tensors(weights))
    crop = enum.transforms().crop_size[0] if enum is not None else 224
    mean, std = (enum.transforms().mean, enum.transforms().std) if enum is not None else IMAGENET
    size = image_size or crop
    example = torch.zeros(2, 3, size, size)
    head = find_head(net, example)
    net, old_head = split_head(net, head)
    pre = ImagePreprocess(size, mean, std)
    groups = module_groups(stage_groups(net, max_groups), prefix="net.")
    targets = ["self_attention.out_proj", "mlp.0", "mlp.3"] if name.startswith("vit") else []
    return Backbone(PreprocessedTrunk(pre, net), old_head.in_features, groups, targets, "torchvision", name)
