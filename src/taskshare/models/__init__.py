"""Model surgery, trunk+head models, and the small built-in models."""
from .surgery import (LayerGroup, execution_order, feature_dim, find_head, freeze, freeze_all_but_last,
                      freeze_by_name, layer_decay_scales, layer_groups, param_groups, reinitialize,
                      split_head, unfreeze)
from .cross_stitch import CrossStitch
from .hard_sharing import HardSharing
from .soft_sharing import SoftSharing
from .trunk_head import TrunkHead, new_head, transfer_model
from .zoo import MODELS, CNN1d, build_model
from .sharing import SHARING, build_sharing   # after the classic modes: each architecture's file registers itself
from .mmoe import MMoE
from .mtan import MTAN
from .ple import PLE

__all__ = ["CNN1d", "CrossStitch", "HardSharing", "MMoE", "MTAN", "PLE", "SHARING", "SoftSharing", "LayerGroup", "MODELS", "TrunkHead", "build_model", "build_sharing", "execution_order", "feature_dim", "find_head",
           "freeze", "freeze_all_but_last", "freeze_by_name", "layer_decay_scales", "layer_groups",
           "new_head", "param_groups", "reinitialize", "split_head", "transfer_model", "unfreeze"]
