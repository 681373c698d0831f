"""Transfer strategies (one file each, registered by name), the feature cache and the runner."""
from .auto import Auto
from .base import STRATEGIES, DataFacts, Stage, Strategy
from .features import FeatureCache, compute_features
from .finetune import Finetune
from .gradual_unfreeze import GradualUnfreeze
from .l2_sp import L2SP
from .last_k import LastK
from .layer_decay import LayerDecay
from .linear_probe import LinearProbe
from .lora import LoRA, adapter_state_dict
from .lp_ft import LPFT
from .run import TransferResult, build_strategy, compare, data_facts, run_strategy
from .scratch import Scratch

__all__ = ["Auto", "DataFacts", "FeatureCache", "Finetune", "GradualUnfreeze", "L2SP", "LPFT", "LastK",
           "LayerDecay", "LinearProbe", "LoRA", "adapter_state_dict", "STRATEGIES", "Scratch", "Stage", "Strategy", "TransferResult",
           "build_strategy", "compare", "compute_features", "data_facts", "run_strategy"]
