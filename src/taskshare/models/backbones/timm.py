"""timm models through timm's own contract: `num_classes=0` gives pooled features, `group_matcher`
the layer groups, the pretrained config the preprocessing."""
from __future__ import annotations

from pathlib import Path

from ...errors import TaskshareError
from .base import Backbone, ImagePreprocess, PreprocessedTrunk, module_groups, require


def timm_backbone(name: str, pretrained: bool = False, checkpoint: str | Path | None = None,
                  image_size: int | None = None) -> Backbone:
    """A timm model with its classifier removed. pretrained=True downloads where the network allows;
    `checkpoint` loads a local file instead (timm's `pretrained_cfg_overlay`)."""
    timm = require("timm", "timm")
    kwargs = {}
    if checkpoint is not None:
        if not Path(checkpoint).exists():
            raise TaskshareError(f"checkpoint {checkpoint} does not exist")
        pretrained, kwargs = True, {"pretrained_cfg_overlay": {"file": str(checkpoint)}}
    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except RuntimeError as exc:
        raise TaskshareError(f"timm could not build {name!r}: {exc}") from None
    except OSError as exc:   # the hub's download errors are OSErrors: offline is the common case
        raise TaskshareError(f"the pretrained {name} weights could not be fetched ({exc}); give a local file "
                             f"instead, the key 'checkpoint' set to a path: {{timm: {name}, checkpoint: "
                             f"path/to/weights.safetensors}}") from None
    config = timm.data.resolve_data_config({}, model=net)
    size = image_size or config["input_size"][-1]
    from timm.models import group_parameters
    grouped = group_parameters(net, net.group_matcher(coarse=True))
    groups = module_groups([grouped[k] for k in sorted(grouped)], prefix="net.")
    targets = ["qkv", "proj"] if any(n.endswith("attn.qkv.weight") for n, _ in net.named_parameters()) else []
    pre = ImagePreprocess(size, config["mean"], config["std"])
    return Backbone(PreprocessedTrunk(pre, net), net.num_features, groups, targets, "timm", name)
