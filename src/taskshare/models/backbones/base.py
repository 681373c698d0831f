"""What every adapter returns: a trunk (inputs -> (batch, features)) with its preprocessing built in,
its layer groups as regexes (input to output), and where LoRA adapters go. Strategies, the feature
cache and the reports use it like any other trunk."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import TaskshareError, require  # noqa: F401  (require: the adapters import it from here)
from ...tasks import Task
from ..trunk_head import TrunkHead


class ImagePreprocess(nn.Module):
    """Images in [0, 1] of any size, grayscale or colour -> what the network was trained on: a channel
    axis added to (B, H, W), one channel repeated to three, bilinear resize (antialiased) to `size`,
    then (x - mean) / std."""

    def __init__(self, size: int | Sequence[int], mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4:
            raise TaskshareError(f"images must be (batch, H, W) or (batch, C, H, W); got shape {tuple(x.shape)}")
        channels = self.mean.shape[1]
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != channels:
            raise TaskshareError(f"this backbone takes 1 or {channels} channels; got {x.shape[1]} (shape {tuple(x.shape)})")
        x = x.float()
        if tuple(x.shape[-2:]) != self.size:
            # Antialiasing only changes a shrink (enlarging gives the same pixels to 1e-6), and
            # leaving it off when enlarging keeps the model exportable to ONNX.
            shrink = x.shape[-2] > self.size[0] or x.shape[-1] > self.size[1]
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=bool(shrink))
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"size={self.size}, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class PreprocessedTrunk(nn.Module):
    """`net(pre(x))`: the preprocessing travels with the trunk, so cached features and saved models
    see exactly what training saw."""

    def __init__(self, pre: nn.Module, net: nn.Module):
        super().__init__()
        self.pre, self.net = pre, net

    def forward(self, x):
        return self.net(self.pre(x))


@dataclass
class Backbone:
    """A pretrained (or randomly initialised) network, adapted.

    trunk: inputs -> (batch, num_features). group_patterns: regexes over the trunk's parameter names,
    input to output. lora_targets: module-name patterns for LoRA. family: where it came from.
    """

    trunk: nn.Module
    num_features: int
    group_patterns: dict[str, str]
    lora_targets: list[str] = field(default_factory=list)
    family: str = "module"
    name: str = ""
    tokenizer: object | None = None   # text backbones: turns strings into the trunk's token tensor

    def with_head(self, task: Task) -> TrunkHead:
        """The trunk with a new head for `task`, ready for every transfer strategy."""
        model = TrunkHead(self.trunk, task.make_head(self.num_features), self.group_patterns)
        model.lora_targets = list(self.lora_targets)
        return model


def _short(module_path: str) -> str:
    """A readable name for a module path: its components up to the first numbered one (at most 3)."""
    parts = [p for p in module_path.rstrip(".").split(".") if p != "net"]
    out = []
    for p in parts[:3]:
        out.append(p)
        if any(ch.isdigit() for ch in p):
            break
    return ".".join(out)


def module_groups(groups: Sequence[Sequence[str]], prefix: str = "") -> dict[str, str]:
    """Named regexes, one per group of parameter names. A parameter is matched by its module's path
    prefix when every parameter under that module is in the same group, so parameters added inside
    it later (LoRA adapters) join the group; otherwise (a parameter owned directly by a container,
    like ViT's position embedding) by its exact name. Names read like 'features.2-features.4'."""
    owner = {n: i for i, names in enumerate(groups) for n in names}
    out: dict[str, str] = {}
    for i, names in enumerate(groups):
        if not names:
            continue
        alternatives = []
        for n in names:
            module = n.rsplit(".", 1)[0] + "." if "." in n else None
            if module and all(owner[m] == i for m in owner if m.startswith(module)):
                alternatives.append(re.escape(prefix + module))
            else:
                alternatives.append(re.escape(prefix + n) + "$")
        alternatives = list(dict.fromkeys(alternatives))
        first, last = _short(names[0].rsplit(".", 1)[0]), _short(names[-1].rsplit(".", 1)[0])
        name = first if first == last else f"{first}-{last}"
        while name in out:
            name += "'"
        out[name] = "^(?:" + "|".join(alternatives) + ")"
    return out
