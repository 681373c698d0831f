"""Pretrained models named in YAML, one builder per family, registered by the family's key:

    model: {torchvision: mobilenet_v2, weights: DEFAULT}        # or weights: path/to.pth, image_size: 96
    model: {timm: convnext_tiny, checkpoint: path/to.safetensors}   # or pretrained: true
    model: {hf: sentence-transformers/all-MiniLM-L6-v2}          # or a local folder; pooling, max_length

`rebuild` makes the same architecture again for loading saved weights (no download: the weights
come from the run's file) and restores the preprocessing recorded at training time."""
from __future__ import annotations

from typing import Any, Callable

from ...errors import ConfigError
from ...registry import Registry
from .base import Backbone, ImagePreprocess

BACKBONES: Registry[Callable[..., Backbone]] = Registry("model family", Backbone)


@BACKBONES.register("torchvision")
def _torchvision(model: str, weights: str | None = None, image_size: int | None = None, max_groups: int = 8,
                 pretrained: bool = True) -> Backbone:
    from . import torchvision_backbone
    return torchvision_backbone(model, weights if pretrained else None, max_groups, image_size)


@BACKBONES.register("timm")
def _timm(model: str, pretrained: bool = False, checkpoint: str | None = None, image_size: int | None = None) -> Backbone:
    from . import timm_backbone
    return timm_backbone(model, pretrained, checkpoint, image_size)


@BACKBONES.register("hf")
def _hf(model: str, pooling: str = "mean", max_length: int = 128, pretrained: bool = True) -> Backbone:
    from . import hf_backbone
    return hf_backbone(model, pooling, max_length)


def family(spec: dict[str, Any]) -> str | None:
    """The family key a model spec names, or None for a built-in ({name: mlp, args: {...}})."""
    keys = [k for k in spec if k in BACKBONES]
    if len(keys) > 1:
        raise ConfigError(f"model names {keys}; expected one of {', '.join(BACKBONES.names())} or a built-in 'name'")
    if keys and "name" in spec:
        raise ConfigError(f"model: give {keys[0]!r} (a pretrained model) or 'name' (a built-in), not both")
    return keys[0] if keys else None


def build_backbone(spec: dict[str, Any], pretrained: bool = True) -> Backbone:
    """The backbone a spec names. pretrained=False builds the architecture only (timm and
    torchvision: random weights; Hugging Face folders are read as they are)."""
    key = family(spec)
    if key is None:
        raise ConfigError(f"model {spec!r} names no pretrained family; expected one of {', '.join(BACKBONES.names())}")
    options = {k: v for k, v in spec.items() if k != key}
    if not pretrained:
        if key == "timm":
            options.update(pretrained=False, checkpoint=None)
        elif key == "torchvision":
            options["pretrained"] = False
    return BACKBONES.build({"name": key, **options}, model=spec[key])   # the family's key names the model


def preprocessing_of(backbone: Backbone) -> dict[str, Any] | None:
    """The image preprocessing built into a backbone's trunk, as data (None for non-image models)."""
    pre = getattr(backbone.trunk, "pre", None)
    if not isinstance(pre, ImagePreprocess):
        return None
    return {"size": list(pre.size), "mean": pre.mean.flatten().tolist(), "std": pre.std.flatten().tolist()}


def restore_preprocessing(backbone: Backbone, record: dict[str, Any] | None) -> None:
    if record is not None and isinstance(getattr(backbone.trunk, "pre", None), ImagePreprocess):
        backbone.trunk.pre = ImagePreprocess(record["size"], record["mean"], record["std"])
