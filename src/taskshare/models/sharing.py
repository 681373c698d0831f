"""Sharing architectures by name: `build_sharing("mmoe", trunk_factory, tasks, example, **options)` builds
one, which is how compare_sharing and the multitask YAML's `modes:` reach every architecture. Each
architecture's file registers its own builder; the three classic modes are registered here."""
from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..registry import Registry
from ..tasks import Task
from .cross_stitch import CrossStitch
from .hard_sharing import HardSharing
from .soft_sharing import SoftSharing

Builder = Callable[..., nn.Module]
SHARING: Registry[Builder] = Registry("sharing mode", nn.Module)


def build_sharing(mode: str, trunk_factory: Callable[[], nn.Module], tasks: Sequence[Task], example: Tensor,
                  coupling: float = 1e-3, layers: str | None = None, **options: Any) -> nn.Module:
    """A registered sharing architecture by name; `options` are its own (num_experts for mmoe,
    shared_experts / task_experts for ple and cgc, ...). `coupling` and `layers` reach the modes that
    take them (soft sharing)."""
    return SHARING.build({"name": mode, **options}, trunk_factory=trunk_factory, tasks=tasks, example=example,
                         coupling=coupling, layers=layers)


@SHARING.register("hard")
def _hard(trunk_factory, tasks, example):
    return HardSharing(trunk_factory(), tasks, example)


@SHARING.register("soft")
def _soft(trunk_factory, tasks, example, coupling: float = 1e-3, layers: str | None = None, distance: str = "mean"):
    return SoftSharing(trunk_factory(), tasks, example, coupling=coupling, layers=layers, distance=distance)


@SHARING.register("cross_stitch")
def _cross_stitch(trunk_factory, tasks, example, alpha_self: float = 0.9):
    return CrossStitch(trunk_factory(), tasks, example, alpha_self=alpha_self)


# --- pieces the newer architectures share -----------------------------------------------------------

def fresh_copies(source: nn.Module | Callable[[], nn.Module], n: int) -> list[nn.Module]:
    """n independently initialised modules: calls of a factory, or copies of a module with every
    submodule's parameters reset (identical experts would stay identical under a shared gate)."""
    if callable(source) and not isinstance(source, nn.Module):
        return [source() for _ in range(n)]
    out = []
    for _ in range(n):
        m = copy.deepcopy(source)
        for sub in m.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
        out.append(m)
    return out


def gate_input(h: Tensor) -> Tensor:
    """What a gate reads: the features of (batch, features), or channels averaged over positions."""
    return h if h.dim() == 2 else h.flatten(2).mean(-1)


def pointwise(in_ch: int, out_ch: int, dims: int) -> nn.Module:
    """A per-position linear map for (batch, channels, *positions) tensors of `dims` dimensions."""
    return {2: lambda: nn.Linear(in_ch, out_ch), 3: lambda: nn.Conv1d(in_ch, out_ch, 1),
            4: lambda: nn.Conv2d(in_ch, out_ch, 1), 5: lambda: nn.Conv3d(in_ch, out_ch, 1)}[dims]()


@torch.no_grad()
def dry_shapes(stages: Sequence[nn.Module], example: Tensor) -> list[tuple[int, ...]]:
    """Output shape of each stage run in sequence on the example (eval mode, then restored)."""
    shapes, h = [], example
    for stage in stages:
        was = stage.training
        stage.eval()
        try:
            h = stage(h)
        except Exception as exc:
            raise TaskshareError(f"a stage cannot take an input of shape {tuple(h.shape)} "
                                 f"({type(exc).__name__}: {exc})") from exc
        finally:
            stage.train(was)
        shapes.append(tuple(h.shape))
    return shapes


def task_heads(tasks: Sequence[Task], width: int) -> nn.ModuleDict:
    from .heads import DENSE_KINDS, TaskModules, task_head    # with a dense task the features are images: pooled per-image heads
    dense = any(t.kind in DENSE_KINDS for t in tasks)
    return TaskModules({t.name: task_head(t, width, dense) for t in tasks})
