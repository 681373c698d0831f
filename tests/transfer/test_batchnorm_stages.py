"""LP-FT on a BatchNorm trunk: a short fine-tuning stage never hands on worse weights than its probe,
and the pretrained BatchNorm statistics stay put in short stages (issue 13, the image-folder run)."""
import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig, TrunkHead, fit
from taskshare.data import few_shot
from taskshare.errors import TaskshareError
from taskshare.transfer import run_strategy
from taskshare.transfer.batchnorm import held_statistics, holds, stage_steps


def _bn_trunk_pretrained():
    """A small BN trunk trained on a 4-class source; the target is a shifted, rescaled view of it."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=g) * 3
    y = torch.arange(4).repeat_interleave(100)
    x = centers[y] + torch.randn(400, 8, generator=g)
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU()),
                          nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU()))
    net = TrunkHead(trunk, nn.Linear(32, 4))
    fit(net, Task("src", num_classes=4), (x, y), (x, y), TrainConfig(epochs=15, batch_size=32, progress=False,
                                                                      device="cpu"))
    # the target: the same classes seen through another offset and scale, so its batch statistics
    # are far from the source's running ones
    xt = (centers[y] + torch.randn(400, 8, generator=g)) * 2.5 + 4
    return net, (xt, y)


def test_lp_ft_keeps_at_least_its_probes_validation_score():
    net, (x, y) = _bn_trunk_pretrained()
    splits = few_shot((x, y), 5, seed=0, test=(x, y))       # 20 labels: a handful of small batches
    task = Task("t", num_classes=4)
    # a fine-tuning stage too short and too hot to help: it can only move validation down
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.3, min_steps=0, progress=False, device="cpu")
    _, probe = run_strategy(net, task, splits, "linear_probe", cfg)
    for policy in ("train", "auto"):
        _, lpft = run_strategy(net, task, splits, "lp_ft", cfg, bn_statistics=policy)
        assert lpft.stages[0]["val_score"] == pytest.approx(probe.val_score)
        assert lpft.val_score >= probe.val_score
        if lpft.stages[1].get("kept_start"):                 # the probe's weights were handed on unchanged
            assert lpft.test["accuracy"] == pytest.approx(probe.test["accuracy"])


def test_short_stages_hold_the_pretrained_statistics_and_long_ones_may_move_them():
    net, (x, y) = _bn_trunk_pretrained()
    splits = few_shot((x, y), 5, seed=0)
    task = Task("t", num_classes=4)
    before = net.trunk[0][1].running_mean.clone()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, min_steps=0, progress=False, device="cpu")
    held, _ = run_strategy(net, task, splits, "finetune", cfg)                  # 6 steps: "auto" holds
    moved, r = run_strategy(net, task, splits, "finetune", cfg, bn_statistics="train")
    assert torch.equal(held.trunk[0][1].running_mean, before)
    assert not torch.allclose(moved.trunk[0][1].running_mean, before)
    assert not r.stages[0]["bn_statistics_held"]
    assert not torch.equal(held.trunk[0][1].weight, net.trunk[0][1].weight)    # the affine weights still train
    held.train()                                                               # the hold ends with the stage
    assert held.trunk[0][1].training


def test_policy_and_step_count():
    assert stage_steps(100, 32, 1, 0) == 4 and stage_steps(100, 32, 1, 10) == 12
    assert holds("auto", 40) and not holds("auto", 400) and holds("hold", 400) and not holds("train", 1)
    with pytest.raises(TaskshareError, match="bn_statistics must be one of"):
        holds("freeze", 1)
    bn = nn.BatchNorm1d(3)
    with held_statistics(bn):
        bn.train()(torch.randn(5, 3) + 10)
    assert torch.equal(bn.running_mean, torch.zeros(3))
