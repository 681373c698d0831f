"""Domain adaptation: gradient reversal, each loss on hand-checkable inputs, the domain distance, a
short end-to-end run per method, and the bad inputs."""
import math

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.adapt import (ADAPTERS, GradientReversal, coral, dann_schedule, entropy, fit_adaptation,
                             minimum_class_confusion, multi_kernel_mmd, proxy_a_distance, pseudo_label,
                             reverse_gradient)
from taskshare.models.trunk_head import TrunkHead


def test_gradient_reversal_flips_sign_and_scales():
    x = torch.randn(4, 3, requires_grad=True)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(12.0).reshape(4, 3)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(12.0).reshape(4, 3))
    layer = GradientReversal(2.0)
    z = torch.ones(2, requires_grad=True)
    layer(z).sum().backward()
    assert torch.equal(z.grad, torch.full((2,), -2.0))


def test_dann_schedule_rises_from_zero_to_one():
    values = [dann_schedule(p / 10) for p in range(11)]
    assert values[0] == 0 and values[-1] > 0.999 and all(a < b for a, b in zip(values, values[1:]))


def test_mmd_and_coral_by_hand():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 5, generator=g)
    assert float(multi_kernel_mmd(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(multi_kernel_mmd(a, a + 3.0)) > 0.1
    assert float(coral(a, a + 5.0)) == pytest.approx(0.0, abs=1e-10)   # a shift keeps the covariance
    s = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    # covariances diag(2/3, 2/3) and diag(8/3, 8/3): ||diff||^2 = 2 * 2^2, / (4 * 2^2) = 0.5
    assert float(coral(s, 2 * s)) == pytest.approx(0.5, rel=1e-6)


def test_prediction_losses_by_hand():
    uniform = torch.zeros(3, 4)
    assert float(entropy(uniform)) == pytest.approx(math.log(4))
    confident = torch.eye(4) * 50
    assert float(minimum_class_confusion(confident)) == pytest.approx(0.0, abs=1e-6)
    assert float(minimum_class_confusion(uniform)) == pytest.approx(0.75, rel=1e-6)  # all mass spread evenly
    assert float(pseudo_label(uniform)) == 0.0
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.1]], requires_grad=True)
    loss = pseudo_label(logits, threshold=0.9)   # only the first row is confident
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))))


def test_proxy_a_distance_separates_far_domains_only():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(400, 6, generator=g), torch.randn(400, 6, generator=g)
    assert proxy_a_distance(a, b) < 0.4
    assert proxy_a_distance(a, b + 4.0) > 1.8


def _shifted(seed=0, n=300):
    """Two Gaussian classes in 2-D; the target is the source rotated by 35 degrees."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.6 + torch.stack([2.0 * y - 1, torch.zeros(n)], 1) * 1.5
    angle = math.radians(35)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (x, y), (x @ rot.T, y)


def _model():
    torch.manual_seed(0)
    return TrunkHead(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU()), nn.Linear(8, 2))


CFG = TrainConfig(epochs=3, batch_size=32, min_steps=0, progress=False, device="cpu")


LEARN = TrainConfig(epochs=10, lr=1e-2, batch_size=32, min_steps=0, progress=False, device="cpu")


def _accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def source_only_trunk():
    source, target = _shifted()
    model = _model()
    fit_adaptation(model, Task("c", num_classes=2), source, target[0], val=source, config=LEARN, target_test=target)
    return [p.detach().clone() for p in model.trunk.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("name", ADAPTERS.names())
def test_every_method_trains_end_to_end(name, source_only_trunk):
    """Each method learns the source task (a constant predictor scores 1/2) and its loss changes
    the trunk that source-only training (same seed, same batches) reaches."""
    source, target = _shifted()
    model = _model()
    history = fit_adaptation(model, Task("c", num_classes=2), source, target[0], val=source, config=LEARN,
                             method=name, target_test=target)
    assert _accuracy(model, *source) > 0.9
    assert any(not torch.allclose(a, b, atol=1e-4) for a, b in zip(source_only_trunk, model.trunk.parameters()))
    assert all(math.isfinite(r["train_loss"]) for r in history.epochs)
    assert "val_target_accuracy" in history.epochs[-1]


def _spurious_inputs(seed=0, n=300, dims=8, noise=4.0):
    """The label lives in the first input alone; the other inputs are 0 in the source and loud noise
    in the target. Source labels never move the weights on those inputs (their gradient is 0), so
    source-only keeps its random weights there and the target's noise flips predictions; a method that
    aligns source and target features must learn to ignore them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.zeros(n, dims)
    x[:, 0] = torch.randn(n, generator=g) * 0.6 + (2.0 * y - 1) * 1.5
    xt = x.clone()
    xt[:, 1:] = noise * torch.randn(n, dims - 1, generator=g)
    return (x, y), (xt, y)


@pytest.mark.slow
def test_feature_alignment_beats_source_only_where_it_must():
    source, target = _spurious_inputs()
    cfg = TrainConfig(epochs=30, lr=1e-2, batch_size=32, min_steps=0, progress=False, device="cpu")
    scores = {}
    for name in ("source_only", "coral", "dann", "cdan"):
        torch.manual_seed(0)
        model = TrunkHead(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU()), nn.Linear(8, 2))
        # the last epoch's weights and an unbounded pull: what the alignment itself achieves
        fit_adaptation(model, Task("c", num_classes=2), source, target[0], config=cfg, method=name, pull_limit=None)
        scores[name] = _accuracy(model, *target)
    assert scores["source_only"] < 0.85, scores
    assert all(scores[m] > scores["source_only"] + 0.1 for m in ("coral", "dann", "cdan")), scores


def test_importance_weighted_selection_runs_without_target_labels():
    source, target = _shifted()
    history = fit_adaptation(_model(), Task("c", num_classes=2), source, target[0], val=source, config=CFG,
                             method="dann", selection="iwv")
    assert all(math.isfinite(r["val_iw_loss"]) for r in history.epochs)


def test_bad_inputs_are_named():
    source, target = _shifted()
    task = Task("c", num_classes=2)
    with pytest.raises(TaskshareError, match=r"target inputs have shape \(3,\).*source \(2,\)"):
        fit_adaptation(_model(), task, source, torch.randn(10, 3), config=CFG, method="dann")
    with pytest.raises(TaskshareError, match="target data is empty"):
        fit_adaptation(_model(), task, source, torch.empty(0, 2), config=CFG, method="dann")
    with pytest.raises(TaskshareError, match="mcc reads class predictions.*regression"):
        fit_adaptation(_model(), Task("r", "regression"), (source[0], source[0][:, 0]), target[0], config=CFG,
                       method="mcc")
    with pytest.raises(TaskshareError, match="unknown domain adaptation method 'dannn'"):
        fit_adaptation(_model(), task, source, target[0], config=CFG, method="dannn")
    with pytest.raises(TaskshareError, match="selection must be one of"):
        fit_adaptation(_model(), task, source, target[0], config=CFG, method="dann", selection="target")
    with pytest.raises(TaskshareError, match="needs at least 2 samples per domain"):
        multi_kernel_mmd(torch.randn(1, 3), torch.randn(5, 3))
