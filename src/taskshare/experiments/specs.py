"""What an experiment's YAML names: the model (one ModelSpec for every mode) and the data (one
family of data specs, one per shape of data: a single task, several tasks, two domains).

    model: {name: cnn1d, args: {channels: [32, 32]}}            # a built-in from the zoo
    model: {torchvision: mobilenet_v2, weights: DEFAULT}         # or a pretrained family from the
    model: {timm: convnext_tiny, checkpoint: path}               # backbone registry, with that family's
    model: {hf: sentence-transformers/all-MiniLM-L6-v2}          # own options
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..models.backbones.spec import BACKBONES, build_backbone, family
from ..models.zoo import MODELS, build_model
from ..config import typed
from ..validate import model_arguments


@dataclass
class ModelSpec:
    """A built-in model (`name`, `args`) or a pretrained one (`pretrained`: the family's mapping as
    written, e.g. {timm: convnext_tiny, pretrained: true}); read from YAML by `from_config`, written
    back the same way by `to_config`."""

    name: str | None = "mlp"                               # a built-in model: mlp | cnn1d | cnn2d
    args: dict[str, Any] = field(default_factory=dict)     # its keyword arguments, e.g. hidden: [256, 256]
    pretrained: dict[str, Any] | None = None               # or a pretrained family's mapping (then no name)

    @classmethod
    def from_config(cls, value: Any, where: str = "model") -> "ModelSpec":
        """The spec a YAML `model:` mapping gives; a key no model takes is named with the allowed ones."""
        if isinstance(value, ModelSpec):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r}; expected a mapping such as {{name: mlp}} or {{torchvision: NAME}}")
        try:
            key = family(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if key is not None:
            return cls(name=None, pretrained=dict(value))
        unknown = [k for k in value if k not in ("name", "args")]
        if unknown or "name" not in value:
            raise ConfigError(f"{where}: {'unknown key ' + repr(unknown[0]) if unknown else 'no model named'}; "
                              f"expected 'name' (a built-in: {', '.join(MODELS.names())}) and optionally 'args', or "
                              f"a pretrained family ({', '.join(BACKBONES.names())}) with its options")
        name, args = value["name"], value.get("args", {})
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name = {name!r}; expected a string (one of {', '.join(MODELS.names())})")
        if not isinstance(args, dict):
            raise ConfigError(f"{where}.args = {args!r}; expected a mapping")
        return cls(name=name, args=dict(args))

    def to_config(self) -> dict[str, Any]:
        return dict(self.pretrained) if self.pretrained is not None else {"name": self.name, "args": dict(self.args)}

    @property
    def family(self) -> str | None:
        """torchvision | timm | hf for a pretrained model, None for a built-in."""
        return None if self.pretrained is None else family(self.pretrained)

    @property
    def label(self) -> str:
        """A short name for titles: the built-in's name, or the pretrained model's own."""
        if self.pretrained is None:
            return str(self.name)
        named = str(self.pretrained[self.family])
        return Path(named).name or named      # a local folder: its last part

    def check(self) -> None:
        """A built-in's name and arguments resolve (before anything trains)."""
        if self.pretrained is None:
            model_arguments(self.name, MODELS.get(self.name), self.args)

    def build(self, in_features: int, num_outputs: int) -> nn.Module:
        """The built-in model from the zoo, sized for these inputs and outputs."""
        if self.pretrained is not None:
            raise ConfigError(f"model {self.pretrained!r} is a pretrained family; build it with backbone()")
        return build_model(self.name, in_features, num_outputs, **self.args)

    def backbone(self, pretrained: bool = True):
        """The pretrained model through the backbone registry."""
        return build_backbone(self.to_config(), pretrained)


@dataclass
@typed()
class DataSpec:
    """One task's data: the built-in generator or an .npz file (transfer's source and target)."""

    builtin: str | None = None        # "mnist1d": generated locally, no download
    npz: str | None = None            # or an .npz file holding the arrays named below
    x: str = "x"
    y: str = "y"
    x_test: str = "x_test"            # used when present in the file
    y_test: str = "y_test"
    classes: list[int] | None = None  # keep these classes, relabelled 0..n-1 in this order
    num_samples: int = 30_000         # builtin only: samples generated (80% train, 20% test)
    seed: int = 42                    # builtin only: generator seed
    test_fraction: float = 0.2        # npz without test arrays: stratified hold-out


@dataclass
@typed()
class TaskSpec:
    """One task of a multi-task data set."""

    name: str
    kind: str = "binary"
    num_classes: int | None = None
    num_outputs: int | None = None
    key: str | None = None            # npz: the array holding this task's labels (default: the name)
    npz: str | None = None            # this task's own file (arrays x, y): one dataset per task
    ignore_index: int = -1            # kind segmentation: the pixel label meaning "unlabelled"
    mask: str | None = None           # dense kinds, npz: an (N, H, W) array, 0 where the pixel's label is unknown


@dataclass
@typed()
class MultiTaskData:
    """Several tasks' data: built-in digit scenes, one file with every task's labels, or a file per task."""

    builtin: str | None = None        # "digit_scenes": canvases of real digits, task has_<d> per digit;
                                      # "dense_scenes": tasks seg, depth, normals (per pixel) and count
    images: str = "sklearn"           # digit_scenes source: sklearn (8x8, bundled) or an .npz with images, labels
    digits: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    scenes: int = 2400
    canvas: int = 24
    missing: float = 0.3              # share of labels hidden as unknown
    npz: str | None = None            # or a file with inputs `x` and one label array per task
    x: str = "x"
    tasks: list[TaskSpec] = field(default_factory=list)
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0


@dataclass
@typed()
class DomainFile:
    """One domain's .npz file."""

    npz: str
    x: str = "x"
    y: str | None = "y"               # target: optional, used only to report accuracy


@dataclass
@typed()
class AdaptData:
    """Two domains: a labelled source and a target whose labels (if any) never reach training."""

    source: DomainFile | None = None
    target: DomainFile | None = None
    builtin: str | None = None        # "mnist1d_shift": MNIST-1D default -> harder arguments (needs mnist1d)
    samples: int = 4000
    val_fraction: float = 0.2
    test_fraction: float = 0.2        # of the target, held out for reporting when it has labels
