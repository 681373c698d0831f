"""LP-FT's tuning stage starts under the probe's head shrunk to a fresh head's scale, its predictions
kept (transfer/head_temper.py): on ImageNet MobileNetV2 features of 32x32 digits the solved head's
weights were about 1,900 times a fresh head's, and the tuning stage fell below its probe. By default
only under a trunk with BatchNorm: on MLP trunks it did not help."""
import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig, TrunkHead
from taskshare.data import few_shot
from taskshare.errors import TaskshareError
from taskshare.transfer import run_strategy
from taskshare.transfer.head_temper import fresh_scale, temper_head

from ..conftest import blobs


def _small_spread_target():
    """Four classes whose trunk features vary by about 1e-3: a solved head needs weights near 1e3."""
    x, y = (torch.as_tensor(a) for a in blobs(n_per_class=60, classes=4, dim=8, spread=1.0))
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Sequential(nn.Linear(8, 32), nn.ReLU()), nn.Sequential(nn.Linear(32, 16)))
    with torch.no_grad():   # a pretrained-looking trunk whose outputs barely move between inputs
        trunk[1][0].weight.mul_(1e-3)
    return TrunkHead(trunk, nn.Linear(16, 4)), (x, y), Task("t", num_classes=4)


def test_temper_keeps_predictions_and_reaches_a_fresh_heads_scale():
    head = nn.Linear(16, 4)
    with torch.no_grad():
        head.weight.mul_(500)
        head.bias.mul_(500)
    x = torch.randn(50, 16)
    before = head(x)
    factor = temper_head(head, Task("t", num_classes=4))
    assert 0 < factor < 1
    assert torch.equal(head(x).argmax(1), before.argmax(1))
    assert abs(float(head.weight.detach().pow(2).mean().sqrt()) - fresh_scale(head)) < 1e-6
    binary = nn.Linear(16, 1)
    with torch.no_grad():
        binary.weight.mul_(500)
    signs = binary(x).sign()
    assert temper_head(binary, Task("b", kind="binary")) < 1 and torch.equal(binary(x).sign(), signs)


def test_regression_and_already_small_heads_are_left_alone():
    head = nn.Linear(16, 2)
    with torch.no_grad():
        head.weight.mul_(500)
    w = head.weight.clone()
    assert temper_head(head, Task("r", kind="regression", num_outputs=2)) == 1.0 and torch.equal(head.weight, w)
    fresh = nn.Linear(16, 4)
    with torch.no_grad():
        fresh.weight.mul_(0.1)
    w = fresh.weight.clone()
    assert temper_head(fresh, Task("t", num_classes=4)) == 1.0 and torch.equal(fresh.weight, w)   # never scaled up


def test_lp_ft_tunes_from_the_tempered_probe():
    net, data, task = _small_spread_target()
    splits = few_shot(data, 20, seed=0, test=data)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-12, min_steps=0, progress=False, device="cpu")
    probe, _ = run_strategy(net, task, splits, "linear_probe", cfg)
    tuned, r = run_strategy(net, task, splits, {"name": "lp_ft", "temper_head": True}, cfg)
    factor = r.stages[1]["head_tempered"]
    assert factor < 1e-2                                   # the solved head was far above a fresh one's scale
    assert torch.allclose(tuned.head.weight, probe.head.weight * factor, rtol=1e-4, atol=1e-9)
    x = splits.test.x if hasattr(splits.test, "x") else data[0]
    assert torch.equal(tuned(x).argmax(1), probe(x).argmax(1))   # a learning rate of ~0: the probe's predictions
    _, untempered = run_strategy(net, task, splits, {"name": "lp_ft", "temper_head": False}, cfg)
    assert "head_tempered" not in untempered.stages[1]



def test_lp_ft_tempers_by_default_only_under_a_batchnorm_trunk():
    net, data, task = _small_spread_target()
    splits = few_shot(data, 20, seed=0, test=data)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-12, min_steps=0, progress=False, device="cpu")
    _, plain = run_strategy(net, task, splits, "lp_ft", cfg)
    assert "head_tempered" not in plain.stages[1]               # an MLP trunk: measured not to help there
    bn = TrunkHead(nn.Sequential(nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU()), net.trunk[1]),
                   nn.Linear(16, 4))
    with torch.no_grad():
        bn.trunk[0][0].load_state_dict(net.trunk[0][0].state_dict())
    _, with_bn = run_strategy(bn, task, splits, "lp_ft", cfg)
    assert with_bn.stages[1]["head_tempered"] < 1


def test_a_bad_temper_setting_is_named():
    net, data, task = _small_spread_target()
    splits = few_shot(data, 5, seed=0, test=data)
    with pytest.raises(TaskshareError, match="temper_head"):
        run_strategy(net, task, splits, {"name": "lp_ft", "temper_head": "yes"},
                     TrainConfig(epochs=1, progress=False, device="cpu"))
