"""Surgery on any nn.Module: find and cut the head, attach a new one, list layer groups from input to
output, freeze by depth or by name, and turn groups into optimizer parameter groups.

Everything returns ordinary modules and plain lists, so the results work in any training loop.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
_BN_HOOK = "_taskshare_frozen_bn_hook"


# ---- finding and cutting the head ---------------------------------------------------------------
def module_device(module: nn.Module) -> torch.device:
    """Where the module's tensors live (CPU for a module without any)."""
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def execution_order(model: nn.Module, example: Tensor) -> list[str]:
    """Names of parametrised leaf modules in the order a forward pass calls them."""
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()) and _has_params(module):
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: order.append(name)))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(example.to(module_device(model)))
    except Exception as exc:
        raise TaskshareError(f"a forward pass of {type(model).__name__} on an example of shape "
                             f"{tuple(example.shape)} failed ({type(exc).__name__}: {exc}); pass an example "
                             f"the model accepts, or name the head explicitly") from exc
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return order


def find_head(model: nn.Module, example: Tensor | None = None) -> str:
    """Dotted name of the output layer: the last parametrised leaf to run (by a dry forward pass when
    `example` is given, else by registration order). It must be an nn.Linear."""
    if example is not None:
        names = execution_order(model, example)
    else:
        names = [n for n, m in model.named_modules()
                 if n and not any(True for _ in m.children()) and _has_params(m)]
    if not names:
        raise TaskshareError(f"{type(model).__name__} has no parametrised layer to use as head")
    name = names[-1]
    if not isinstance(model.get_submodule(name), nn.Linear):
        raise TaskshareError(
            f"the last layer of {type(model).__name__} is {name!r} ({type(model.get_submodule(name)).__name__}), "
            f"not nn.Linear; name the head explicitly, e.g. head='fc' or head='classifier.1'"
        )
    return name


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def split_head(model: nn.Module, head: str | None = None, example: Tensor | None = None) -> tuple[nn.Module, nn.Module]:
    """(trunk, head): a copy of `model` whose head is replaced by nn.Identity, and the old head."""
    name = head or find_head(model, example)
    try:
        old = model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise TaskshareError(f"{type(model).__name__} has no submodule {name!r}; its modules include {names[-5:]}") from None
    trunk = copy.deepcopy(model)
    _set_submodule(trunk, name, nn.Identity())
    return trunk, copy.deepcopy(old)


def feature_dim(trunk: nn.Module, example: Tensor) -> int:
    """Width of the trunk's output, by a dry forward pass on one example batch."""
    was_training = trunk.training
    try:
        with torch.no_grad():
            trunk.eval()
            out = trunk(example.to(module_device(trunk)))
    except Exception as exc:
        raise TaskshareError(f"the trunk cannot take an input of shape {tuple(example.shape)} "
                             f"({type(exc).__name__}: {exc})") from exc
    finally:
        trunk.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise TaskshareError(f"trunk output has shape {shape}; expected (batch, features). Add a flatten or pooling layer")
    return out.shape[1]


# ---- layer groups -------------------------------------------------------------------------------
@dataclass
class LayerGroup:
    """A named set of parameters; groups are ordered from input to output."""

    name: str
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    modules: list[nn.Module] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.params]

    def __repr__(self) -> str:
        return f"LayerGroup({self.name!r}, {sum(p.numel() for p in self.parameters())} params)"


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _blocks(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Parametrised blocks in registration order. Wrappers holding a single parametrised child are
    looked through; containers (Sequential, ModuleList, ModuleDict) of blocks are expanded; a container
    of plain layers (conv + norm, linear + activation) stays one block."""
    children = [(f"{prefix}{n}", c) for n, c in module.named_children() if _has_params(c)]
    own = list(module.named_parameters(recurse=False))
    if len(children) == 1 and not own:
        name, child = children[0]
        return _blocks(child, name + ".") or children
    out: list[tuple[str, nn.Module]] = []
    for name, child in children:
        inner = [c for c in child.children() if _has_params(c)]
        if isinstance(child, CONTAINERS) and any(not _is_leaf(c) for c in inner):
            out.extend(_blocks(child, name + "."))
        else:
            out.append((name, child))
    return out


def layer_groups(module: nn.Module, patterns: Sequence[str] | Mapping[str, str] | None = None) -> list[LayerGroup]:
    """Groups of parameters from input to output.

    Without patterns, groups are the module tree's parametrised blocks in registration order, with
    normalisation layers merged into the block before them and parameters owned directly by wrappers
    added to the first group. With patterns (regexes over `named_parameters()` names), each parameter
    joins the first pattern it matches; a parameter matching none is an error. A mapping gives the
    groups names: {"stem": r"^conv1", "stage1": r"^layer1", ...}.
    """
    named = list(module.named_parameters())
    if patterns is not None:
        items = list(patterns.items()) if isinstance(patterns, Mapping) else [(p, p) for p in patterns]
        groups = [LayerGroup(name) for name, _ in items]
        compiled = [re.compile(rx) for _, rx in items]
        for name, param in named:
            hit = next((g for g, rx in zip(groups, compiled) if rx.search(name)), None)
            if hit is None:
                raise TaskshareError(f"parameter {name!r} matches none of the group patterns {list(patterns)}")
            hit.params.append((name, param))
        empty = [g.name for g in groups if not g.params]
        if empty:
            raise TaskshareError(f"group patterns {empty} match no parameter")
        return groups
    groups: list[LayerGroup] = []
    for name, block in _blocks(module):
        if groups and isinstance(block, NORM_TYPES):
            groups[-1].name += f"+{name}"
            groups[-1].modules.append(block)
        else:
            groups.append(LayerGroup(name, modules=[block]))
    if not groups:
        return [LayerGroup("all", named, [module])] if named else []
    by_id = {id(p): g for g in groups for m in g.modules for p in m.parameters()}
    for name, param in named:
        (by_id.get(id(param)) or groups[0]).params.append((name, param))
    return groups


# ---- freezing -----------------------------------------------------------------------------------
def _keep_frozen_norm_in_eval(module: nn.Module, inputs) -> None:
    if not any(p.requires_grad for p in module.parameters()):
        module.train(False)


def set_trainable(params: Iterable[nn.Parameter], trainable: bool) -> None:
    for p in params:
        p.requires_grad_(trainable)


def freeze(module: nn.Module, groups: Sequence[LayerGroup] | None = None, train_bn: bool = False) -> None:
    """Stop gradients for the groups (or the whole module). BatchNorm layers left with no trainable
    parameter run in eval mode from then on, whatever `.train()` says, so their running statistics
    stay put; `train_bn=True` keeps them updating."""
    targets = groups if groups is not None else [LayerGroup("all", list(module.named_parameters()), [module])]
    for g in targets:
        set_trainable(g.parameters(), False)
    if train_bn:
        return
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not hasattr(m, _BN_HOOK):
            setattr(m, _BN_HOOK, m.register_forward_pre_hook(_keep_frozen_norm_in_eval))


def unfreeze(module: nn.Module, groups: Sequence[LayerGroup] | None = None) -> None:
    """Let gradients flow again; BatchNorm layers trainable again follow `.train()` once more (call
    it: a layer frozen in eval mode stays there until the model is next put in train mode)."""
    targets = groups if groups is not None else [LayerGroup("all", list(module.named_parameters()), [module])]
    for g in targets:
        set_trainable(g.parameters(), True)
    for m in module.modules():
        if hasattr(m, _BN_HOOK) and all(p.requires_grad for p in m.parameters()):
            getattr(m, _BN_HOOK).remove()
            delattr(m, _BN_HOOK)


def freeze_all_but_last(groups: Sequence[LayerGroup], k: int, module: nn.Module, train_bn: bool = False) -> None:
    """Train only the last k groups."""
    if not 0 <= k <= len(groups):
        raise TaskshareError(f"k={k} groups to train, but the model has {len(groups)} groups")
    unfreeze(module, groups[len(groups) - k:])
    freeze(module, groups[:len(groups) - k], train_bn=train_bn)


def freeze_by_name(module: nn.Module, pattern: str, train_bn: bool = False) -> list[str]:
    """Freeze every parameter whose name matches the regex; returns the names frozen."""
    rx = re.compile(pattern)
    hits = [(n, p) for n, p in module.named_parameters() if rx.search(n)]
    if not hits:
        raise TaskshareError(f"pattern {pattern!r} matches no parameter of {type(module).__name__}")
    freeze(module, [LayerGroup(pattern, hits)], train_bn=train_bn)
    return [n for n, _ in hits]


# ---- learning rates -----------------------------------------------------------------------------
def param_groups(groups: Sequence[LayerGroup], lr: float, scales: Sequence[float] | None = None,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups with lr * scale per layer group, trainable parameters only.
    Biases and normalisation weights (1-d tensors) get no weight decay."""
    scales = list(scales) if scales is not None else [1.0] * len(groups)
    if len(scales) != len(groups):
        raise TaskshareError(f"{len(scales)} learning-rate scales for {len(groups)} layer groups")
    out = []
    for g, s in zip(groups, scales):
        decay = [p for _, p in g.params if p.requires_grad and p.dim() > 1]
        no_decay = [p for _, p in g.params if p.requires_grad and p.dim() <= 1]
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params and s > 0:
                out.append({"params": params, "lr": lr * s, "weight_decay": wd, "group": g.name})
    return out


def layer_decay_scales(n_groups: int, decay: float) -> list[float]:
    """decay ** (distance from the output): the last group gets 1."""
    if not 0 < decay <= 1:
        raise TaskshareError(f"layer decay must be in (0, 1], got {decay!r}")
    return [decay ** (n_groups - 1 - i) for i in range(n_groups)]


def reinitialize(module: nn.Module, generator_seed: int | None = None) -> nn.Module:
    """Fresh random weights for every submodule that knows how to reset itself (the scratch baseline)."""
    def reset(m: nn.Module) -> None:
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()

    if generator_seed is None:
        module.apply(reset)
    else:
        devices = sorted({p.device.index or 0 for p in module.parameters() if p.is_cuda})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(generator_seed)
            module.apply(reset)
    return module
