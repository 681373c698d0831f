"""Image augmentation presets on torchvision's transforms v2, applied to a batch on its device:

    augment: none | light | standard
    augment: {preset: standard, flip: false}        # digits, text in images: a mirrored 3 is no 3
    augment: [random_resized_crop, color_jitter]    # or transforms by name

light: random resized crop (scale 0.8-1) and horizontal flip. standard: crop (scale 0.5-1), flip and
colour jitter (brightness, contrast, saturation 0.2). Flipping is on by default because most photos
mean the same mirrored; turn it off where orientation carries the label. Each call draws its own
random parameters per image, from torch's generator, so seeded runs repeat."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..errors import ConfigError, TaskshareError, require
from ..registry import Registry

PRESETS = ("none", "light", "standard")

# name -> factory(size (H, W)) -> a v2 transform
TRANSFORMS: Registry[Callable[[tuple[int, int]], Any]] = Registry("image transform")


def _v2():
    return require("torchvision.transforms.v2", "vision", "image augmentation needs torchvision")


@TRANSFORMS.register("random_resized_crop")
def _crop(size, scale=(0.5, 1.0)):
    return _v2().RandomResizedCrop(size, scale=scale, antialias=True)


@TRANSFORMS.register("light_crop")
def _light_crop(size):
    return _crop(size, (0.8, 1.0))


@TRANSFORMS.register("horizontal_flip")
def _flip(size):
    return _v2().RandomHorizontalFlip()


@TRANSFORMS.register("color_jitter")
def _jitter(size):
    return _v2().ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)


PRESET_TRANSFORMS = {"none": [], "light": ["light_crop", "horizontal_flip"],
                     "standard": ["random_resized_crop", "horizontal_flip", "color_jitter"]}


def transform_names(spec: Any) -> list[str]:
    """The transform names a spec stands for (a preset, {preset, flip}, or a list)."""
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ConfigError(f"augment = {spec!r}; expected one of {PRESETS}, {{preset: ..., flip: false}} "
                              f"or a list of {', '.join(TRANSFORMS.names())}")
        return list(PRESET_TRANSFORMS[spec])
    if isinstance(spec, dict):
        unknown = set(spec) - {"preset", "flip"}
        if unknown:
            raise ConfigError(f"augment has unknown key {sorted(unknown)[0]!r}; allowed keys: preset, flip")
        names = transform_names(spec.get("preset", "standard"))
        if spec.get("flip", True) is False:
            names = [n for n in names if n != "horizontal_flip"]
        return names
    if isinstance(spec, (list, tuple)):
        for n in spec:
            TRANSFORMS.get(n)
        return list(spec)
    raise ConfigError(f"augment = {spec!r}; expected a preset name, a mapping or a list of transform names")


class BatchAugment:
    """Applies the transforms image by image (each gets its own crop and flip) to a (B, C, H, W)
    batch in [0, 1]; returns a batch of the same shape, on the same device."""

    def __init__(self, names: list[str], size: tuple[int, int]):
        self.names = list(names)
        self.transform = _v2().Compose([TRANSFORMS.get(n)(tuple(size)) for n in names])

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise TaskshareError(f"image augmentation takes (batch, C, H, W) images; got shape {tuple(x.shape)}")
        if x.shape[1] == 1 and any(n == "color_jitter" for n in self.names):
            x = x.expand(-1, 3, -1, -1)   # saturation needs colour; grayscale becomes 3 equal channels
        return torch.stack([self.transform(img) for img in x]).clamp_(0, 1)

    def __repr__(self) -> str:
        return f"BatchAugment({self.names})"


def build_augment(spec: Any, size: tuple[int, int] | None, kind: str = "image") -> BatchAugment | None:
    """The augmentation a spec asks for, or None (no augmentation: the feature cache stays usable)."""
    names = transform_names(spec)
    if not names:
        return None
    if kind != "image":
        raise ConfigError(f"augment = {spec!r} is for images; this data is {kind}: use augment: none")
    if size is None:
        raise TaskshareError("image augmentation needs a fixed image size")
    return BatchAugment(names, size)
