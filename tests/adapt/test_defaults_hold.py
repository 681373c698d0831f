"""The fixes behind 'no method more than 2 points below source-only': pseudo-labelling's loss over the
whole batch, MDD's disparity, and the pull bound under an fp16 grad scaler."""
import math

import pytest
import torch
from torch import nn

from taskshare import Task
from taskshare.adapt import build_method, pseudo_label
from taskshare.adapt.safety import Progress
from taskshare.adapt.train import adaptation_objective, scaled_backward
from taskshare.models.trunk_head import TrunkHead

from .conftest import late_objective


def test_pseudo_label_divides_by_the_whole_batch():
    # one confident prediction (p = e^4 / (e^4 + 1) > 0.95) among four: its cross-entropy over 4,
    # not over 1, so a few confident samples early in training do not pull like a whole batch
    logits = torch.tensor([[4.0, 0.0], [0.1, 0.0], [0.0, 0.2], [0.3, 0.0]])
    ce = math.log(1 + math.exp(-4.0))
    assert float(pseudo_label(logits, 0.95)) == pytest.approx(ce / 4, rel=1e-5)
    assert float(pseudo_label(logits, 0.99)) == 0.0
    everything = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert float(pseudo_label(everything, 0.95)) == pytest.approx(math.log(1 + math.exp(-5.0)), rel=1e-5)


def _trunk_grads(loss_scale: float, pull_limit):
    # weight 100: the alignment out-pulls the source loss, so the bound bites
    model, progress, (loss, parts) = late_objective("coral", 100.0, pull_limit, n=16, dim=2, classes=2, shift=2.0)
    scaled_backward(progress)(loss, parts, loss_scale)
    return torch.cat([p.grad.flatten() / loss_scale for p in model.trunk.parameters()])


def test_pull_bound_holds_under_an_fp16_grad_scaler():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    scale = float(scaler.scale(torch.ones(())))      # the factor the loop passes to the backward hook
    assert scale == 2.0 ** 16
    plain, scaled = _trunk_grads(1.0, 0.2), _trunk_grads(scale, 0.2)
    unbounded = _trunk_grads(1.0, None)
    assert not torch.allclose(plain, unbounded, rtol=1e-3)           # the bound is active here
    # the same update once the scaler unscales; with an unscaled limit the alignment vanished (x 2**-16)
    assert torch.allclose(plain, scaled, rtol=1e-4, atol=1e-7), (plain - scaled).abs().max()


def test_mdd_pushes_the_trunk_from_the_target_term_only():
    """The adversary fits the source (its parameters get the margin term's gradient); the trunk's
    source features get none (the reversed source term pulled them toward the class boundaries), its
    target features get the reversed target term."""
    from taskshare.adapt import MDD
    torch.manual_seed(0)
    method = MDD()
    method.build(4, 3)
    source, target = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    main_s, main_t = torch.randn(6, 3), torch.randn(6, 3)
    method.loss(source, target, main_s, main_t, 1.0).backward()
    assert source.grad is None or float(source.grad.abs().max()) == 0.0
    assert float(target.grad.abs().max()) > 0
    assert all(p.grad is not None and float(p.grad.abs().max()) > 0 for p in method.adversary.parameters())
    paper = MDD(reverse_source=True)
    paper.build(4, 3)
    paper.adversary.load_state_dict(method.adversary.state_dict())
    s2 = source.detach().clone().requires_grad_(True)
    paper.loss(s2, target.detach(), main_s, main_t, 1.0).backward()
    assert float(s2.grad.abs().max()) > 0
    # the reversed target term: the trunk's gradient is -0.1 x the adversary loss's gradient (schedule ~1)
    t3 = target.detach().clone().requires_grad_(True)
    method.loss(source.detach(), t3, main_s, main_t, 1.0).backward()
    t4 = target.detach().clone().requires_grad_(True)
    from taskshare.adapt import margin_disparity
    margin_disparity(main_s, method.adversary(source.detach()), main_t, method.adversary(t4), 4.0).backward()
    assert torch.allclose(t3.grad, -0.1 * (2 / (1 + math.exp(-10)) - 1) * t4.grad, atol=1e-7)


def test_the_source_batch_is_normalised_by_its_own_statistics():
    """A BatchNorm trunk sees the source and the target batch in separate passes, so the source loss
    is exactly source-only training's (one pass over both mixed the statistics: at weight 0 that alone
    cost 7 points of target accuracy on rotated digits)."""
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g) * 3 + 5
    y = torch.randint(0, 2, (16,), generator=g)
    torch.manual_seed(0)
    model = TrunkHead(nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8, 2)).train()
    task = Task("c", num_classes=2)
    loss, parts = adaptation_objective(task, build_method("coral"), 0.0, Progress(10), 0.2)(model, (xs, xt), y)
    assert float(parts["c"]) == pytest.approx(float(task.loss(model(xs), y)), rel=1e-6)
