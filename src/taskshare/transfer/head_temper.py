"""A solved probe's head shrunk to a fresh head's scale before the trunk fine-tunes under it.

Where the convex probe standardises each feature before its L2 penalty (scale="feature": its default from
as many training rows as features on, and its only scaling when the numbers below were measured), the
folded head puts large weights on features that barely vary on the target: on 32x32 digits through ImageNet MobileNetV2 the median
feature's spread is 0.008, single weights reach several hundred and the whole matrix is about 1,900
times a fresh head's (root mean square). Adam moves every trunk parameter by about its rate per step
whatever the head, so under such a head each step swings the logits far more than under a fresh one,
and the head, moving by the same rate, cannot follow. Measured (100 digits per class, the setting of
benchmarks/own_data.py, 2 epochs, 1 seed): LP-FT's tuning stage fell from its probe's 80% on validation
to 55% after one epoch and to chance with the trunk at a third of the rate, while fine-tuning from a
fresh head climbed to 87%. Batch statistics instead of ImageNet's did not help (the stage fell to 15%:
the head was solved on features normalised with the pretrained statistics). Tempered, the stage ended
at 85% on validation (in that quick check); in the published run of benchmarks/own_data.py
--part strategies lp_ft scored 83.3% on test against 80.3% untempered. On small synthetic trunks the tempered and
untempered stages ended alike (tests/transfer/test_head_temper.py pins the mechanics, not a gain).
Dividing weight and bias by one positive factor keeps every argmax and every logit's sign, so the
tuning stage starts from the probe's predictions (and its accuracy) with a fresh head's sensitivity.
A loss-valued or regression output would change, so those heads are left as they are.

Where it helps, measured (lp_ft at equal budgets, tempered against not, test accuracy, seeds 0 and 1):
ImageNet MobileNetV2 on digits at 5 and 20 per class (benchmarks/suite_pretrained.py's budget) 72.9
against 66.7% on average over the four runs (one of them 7 points lower), and 83.3 against 80.3% in
the setting above (the published run); MLP trunks without BatchNorm (the suite's img_split and m1d_odd, 5 to 100 per
class) 1.3 points lower on average (7.7 in the worst run); MiniLM (LayerNorm) on the topic sentences
0.7 lower, within its seeds' spread. LP-FT's default therefore tempers only under a trunk that has
BatchNorm (`tempers`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..tasks import Task

TEMPERED_KINDS = ("multiclass", "binary", "multilabel")   # predictions read by argmax or sign only


def tempers(setting: bool | None, trunk: nn.Module) -> bool:
    """Whether a stage with this `temper_head` setting tempers under `trunk` (None: if it has BatchNorm)."""
    if setting is None:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in trunk.modules())
    return bool(setting)


def fresh_scale(head: nn.Linear) -> float:
    """The root-mean-square weight of nn.Linear's default initialisation (uniform, bound 1/sqrt(fan_in))."""
    return 1.0 / math.sqrt(3 * head.in_features)


@torch.no_grad()
def temper_head(head: nn.Module, task: Task) -> float:
    """Shrink `head` in place to a fresh head's scale where that keeps its predictions; returns the
    factor applied (1.0: left unchanged: not a linear classification head, or already that small)."""
    if task.kind not in TEMPERED_KINDS or not isinstance(head, nn.Linear):
        return 1.0
    rms = float(head.weight.float().pow(2).mean().sqrt())
    factor = fresh_scale(head) / rms if rms > 0 else 1.0
    if factor >= 1.0:
        return 1.0
    head.weight.mul_(factor)
    if head.bias is not None:
        head.bias.mul_(factor)
    return factor
