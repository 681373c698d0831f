"""Adapters that give torchvision, timm and Hugging Face models the same trunk/head/layer-group view
as any nn.Module. Each is imported only when used; a missing package names the extra to install."""
from .base import Backbone, ImagePreprocess, PreprocessedTrunk


def torchvision_backbone(*args, **kwargs):
    from .torchvision import torchvision_backbone as build
    return build(*args, **kwargs)


def timm_backbone(*args, **kwargs):
    from .timm import timm_backbone as build
    return build(*args, **kwargs)


def hf_backbone(*args, **kwargs):
    from .hf import hf_backbone as build
    return build(*args, **kwargs)


__all__ = ["Backbone", "ImagePreprocess", "PreprocessedTrunk", "hf_backbone", "timm_backbone", "torchvision_backbone"]
