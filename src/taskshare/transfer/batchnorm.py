"""Pretrained BatchNorm statistics during a short fine-tuning stage.

In train mode a BatchNorm layer replaces a tenth of its running statistics with each batch's
(momentum 0.1), so a few dozen steps on a small target overwrite what the trunk was pretrained
with, from noisy estimates, while evaluation reads those running statistics: the trained weights
then meet activations they were never trained on, and validation collapses (an ImageNet MobileNetV2
fell from its probe's 55% to 22% after one epoch of LP-FT on 100 digits). A short stage therefore
keeps the statistics where they are (eval-mode normalisation; the affine weights still train), the
usual practice when fine-tuning on little data; a long one has the steps to re-estimate them.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

from torch import nn

from ..errors import TaskshareError

POLICIES = ("auto", "hold", "train")
HOLD_BELOW_STEPS = 100   # "auto": hold the statistics in stages shorter than this many optimizer steps


def check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise TaskshareError(f"bn_statistics must be one of {POLICIES}, got {policy!r}")


def holds(policy: str, steps: int) -> bool:
    """Whether a stage of `steps` optimizer steps keeps the pretrained BatchNorm statistics."""
    check_policy(policy)
    return policy == "hold" or (policy == "auto" and steps < HOLD_BELOW_STEPS)


def stage_steps(examples: int, batch_size: int, epochs: int, min_steps: int, accumulate: int = 1) -> int:
    """The optimizer steps a stage will take (as train.loop.epoch_budget counts them)."""
    per_epoch = max(1, math.ceil(examples / batch_size))
    epochs = max(epochs, math.ceil(min_steps / per_epoch))
    return epochs * math.ceil(per_epoch / accumulate)


def _eval_mode(module: nn.Module, inputs) -> None:
    module.train(False)


@contextmanager
def held_statistics(module: nn.Module, hold: bool = True):
    """Every BatchNorm layer of `module` normalises with its running statistics and leaves them
    unchanged inside the block, whatever `.train()` says; the next `.train()` after it restores
    the usual behaviour."""
    handles = [m.register_forward_pre_hook(_eval_mode) for m in module.modules()
               if hold and isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
