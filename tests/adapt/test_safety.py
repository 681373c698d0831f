"""Safe defaults: the ramp, the bounded pull on the features, DAN keeping the source task on a trunk
without BatchNorm, the warning that names a method which wrecked the source task, and a constructed
shift where adaptation with its defaults must beat source-only by a clear margin."""
import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig
from taskshare.adapt import bound_gradient, check_source_score, fit_adaptation, ramp
from taskshare.adapt.safety import Progress
from taskshare.models.trunk_head import TrunkHead
from taskshare.train.loop import evaluate


def test_ramp_rises_from_zero_to_one():
    values = [ramp(p / 20) for p in range(21)]
    assert values[0] == 0.0 and values[-1] > 0.999 and all(a < b for a, b in zip(values, values[1:]))
    assert ramp(0.1) == pytest.approx(2 / (1 + math.exp(-1)) - 1)


def test_bound_gradient_caps_the_norm_and_keeps_the_direction():
    x = torch.ones(2, 2, requires_grad=True)
    (bound_gradient(x, 1.0) * torch.tensor([[3.0, 0.0], [0.0, 4.0]])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[0.6, 0.0], [0.0, 0.8]]))     # norm 5 -> 1
    y = torch.ones(2, requires_grad=True)
    (bound_gradient(y, 10.0) * 2).sum().backward()
    assert torch.equal(y.grad, torch.full((2,), 2.0))                         # under the cap: untouched


def test_limit_keeps_the_peak_source_pull():
    p = Progress(10)
    assert float(p.limit(torch.tensor(2.0), 0.5)) == 1.0
    assert float(p.limit(torch.tensor(0.1), 0.5)) == 1.0      # the source is learned: the peak stays
    p2 = Progress(10)
    p2.load_state_dict(p.state_dict())
    assert p2.peak_pull == 2.0


def test_warning_names_the_method(caplog):
    with caplog.at_level(logging.WARNING, logger="taskshare"):
        message = check_source_score("dan", 0.11, 0.95, True, 10)
    assert "dan" in message and "0.110" in message and "dan" in caplog.text
    assert check_source_score("dan", 0.93, 0.95, True, 10) is None
    assert "near chance" in check_source_score("jan", 0.12, None, True, 10)


def _digits(seed=0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = torch.as_tensor(x[order]).reshape(len(x), -1), torch.as_tensor(d.target[order])
    return (x[:1000], y[:1000]), (x[1000:1300], y[1000:1300]), 1.0 - x[1300:]


def _plain_trunk():
    torch.manual_seed(0)   # no BatchNorm: the setting where the detached-bandwidth MMD collapsed the features
    return TrunkHead(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU()),
                     nn.Linear(16, 10))


@pytest.mark.slow
def test_dan_with_defaults_keeps_the_source_task():
    """Digits -> colour-inverted digits, a trunk without BatchNorm (unbounded, after 12 epochs, DAN
    held the source at 0.30 against source-only's 0.83 when measured): with the defaults it stays
    within 5 points of source-only."""
    train, val, target = _digits()
    task = Task("digit", num_classes=10)
    cfg = TrainConfig(epochs=25, batch_size=64, lr=2e-3, min_steps=0, progress=False, device="cpu")
    accuracy = {}
    for method in [None, "dan"]:
        model = _plain_trunk()
        fit_adaptation(model, task, train, target, val, cfg, method=method)
        accuracy[method] = evaluate(model, task, val)["accuracy"]
    assert accuracy[None] > 0.88, accuracy
    assert accuracy["dan"] > accuracy[None] - 0.05, accuracy


def _shifted_gaussians(n=600, seed=0):
    """Two classes apart along x (sd 0.35), spread along y (sd 1); the target is the same, moved by +1
    along x, so the source-only boundary (x = 0) cuts through the target's class 0."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (2 * n,), generator=g)
    x = torch.randn(2 * n, 2, generator=g) * torch.tensor([0.35, 1.0]) + torch.stack([2.0 * y - 1, torch.zeros(2 * n)], 1)
    return (x[:n], y[:n]), (x[n:] + torch.tensor([1.0, 0.0]), y[n:])


def _last_epoch_target_accuracy(method):
    source, target = _shifted_gaussians()
    task = Task("c", num_classes=2)
    cfg = TrainConfig(epochs=60, batch_size=64, lr=5e-3, min_steps=0, progress=False, device="cpu")
    torch.manual_seed(0)
    m = TrunkHead(nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()), nn.Linear(64, 2))
    fit_adaptation(m, task, source, target[0], None, cfg, method=method)   # no selection: the last epoch
    return evaluate(m, task, target)["accuracy"]


@pytest.fixture(scope="module")
def source_only_accuracy():
    before = torch.get_num_threads()
    torch.set_num_threads(1)       # module-scoped: runs before the per-test one-thread fixture
    yield _last_epoch_target_accuracy(None)
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["jan", "mcc"])
def test_adaptation_with_defaults_beats_source_only_on_a_constructed_shift(name, source_only_accuracy):
    """JAN and MCC (class-aware) gain more than 5 points here. Measured and left out: DAN gained 2
    points (source-only 0.83) and lost at a shift of 1.3; DANN, CDAN, CORAL, MDD, MCD, AFN, BSP, PADA
    and the self-training baselines did not gain on this construct."""
    adapted = _last_epoch_target_accuracy(name)
    assert source_only_accuracy < 0.85 and adapted > source_only_accuracy + 0.05, (source_only_accuracy, adapted)
