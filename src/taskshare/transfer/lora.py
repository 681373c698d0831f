from dataclasses import dataclass, field

from torch import nn

from ..errors import TaskshareError
from ..models import TrunkHead
from ..models import layer_groups
from ..models.backbones.base import module_groups, require
from .base import STRATEGIES, DataFacts, Stage, Strategy


def default_targets(trunk: nn.Module) -> list[str]:
    """Where LoRA goes when the backbone names nothing: every Linear layer and every pointwise (1x1)
    convolution of the trunk, by full module name."""
    names = [n for n, m in trunk.named_modules()
             if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1)]
    if not names:
        raise TaskshareError("the trunk has no Linear or 1x1 Conv2d layer for LoRA; name target_modules explicitly")
    return names


@STRATEGIES.register("lora")
@dataclass
class LoRA(Strategy):
    """LoRA (Hu et al. 2021) through the peft package: low-rank adapters W + (alpha/r) B A beside the
    frozen pretrained weights; only the adapters and the head train (and need saving). Targets: the
    backbone's own choice (attention projections for transformers), `target_modules`, or every Linear
    and 1x1 convolution."""

    name = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if self.r < 1:
            raise TaskshareError(f"lora: r must be >= 1, got {self.r!r}")
        return [Stage("lora", prepare=self.inject, only=r"lora_")]

    def inject(self, model: TrunkHead) -> None:
        peft = require("peft", "peft")
        if model.group_patterns is None:  # pin the groups: injection reshapes the module tree
            groups = layer_groups(model.trunk)
            model.group_patterns = module_groups([[n for n, _ in g.params] for g in groups])
        targets = self.target_modules or getattr(model, "lora_targets", []) or default_targets(model.trunk)
        config = peft.LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets)
        peft.inject_adapter_in_model(config, model.trunk)


def adapter_state_dict(model: nn.Module) -> dict:
    """What a LoRA-tuned model needs saved: the adapters and the head (the rest is the pretrained model)."""
    return {k: v for k, v in model.state_dict().items() if "lora_" in k or k.startswith("head.")}
