"""The balancing contract, checked on every registered method (a new registration is covered without
editing this file, except the scale table, which must say what its definition promises):

- built with defaults from the registry, one call returns what its `needs` documents: a scalar to
  differentiate (losses), one weight per task (Gramian), one direction over the parameters;
- a method never writes `.grad` (it returns weights or directions; only the trainer writes);
- scaling every task loss by c > 0 (so every task gradient by c too) scales the update by c^k, with
  k taken from each method's definition."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from taskshare.balancing import BALANCERS, build_balancer

T, P = 3, 6
# GradNorm reads the gradients of the last shared layer, which the trainer hands it; it is checked
# through fit_multitask (tests/balancing/test_methods.py), not called alone here.
TRAINER_FED = {"gradnorm"}
RANDOM_OR_STATEFUL = {"pcgrad", "graddrop", "gradvac"}   # random task order or masks; an EMA of cosines
NAMES = [n for n in BALANCERS.names() if n not in TRAINER_FED]
LOSS_METHODS = [n for n in NAMES if BALANCERS.get(n).needs == "losses"]
GRADIENT_METHODS = [n for n in NAMES if BALANCERS.get(n).needs != "losses"]

# k in update(c * losses) = c^k * update(losses). Loss weighting: the update is sum_t w_t grad L_t
# with w_t = d(method loss)/d L_t; weights that do not depend on the losses' scale give k = 1.
# Log-based ones divide each gradient by its loss: k = 0 (FAMO's c = 1 / sum_t z_t / L_t puts the
# scale back: k = 1). Gradient methods: a convex or projected
# combination of the gradients scales with them (k = 1); Nash-MTL's bargaining solution solves
# G G^T a = 1 / a, so a scales by 1/c and the update not at all (k = 0); FairGrad solves
# G G^T w = w^(-1/alpha), which gives k = (1 - alpha) / (1 + alpha).
def _fairgrad_k():
    alpha = BALANCERS.get("fairgrad")().alpha
    return (1 - alpha) / (1 + alpha)


SCALE_EXPONENT = {
    "equal": 1, "fixed": 1, "uncertainty": 1, "dwa": 1, "rlw": 1, "gls": 1, "imtl_l": 1, "famo": 1,
    "log_scale": 0,
    "mgda": 1, "upgrad": 1, "pcgrad": 1, "imtl_g": 1, "cagrad": 1, "aligned_mtl": 1, "config": 1,
    "dualproj": 1, "graddrop": 1, "gradvac": 1, "nash_mtl": 0, "fairgrad": _fairgrad_k(),
}


def _make(name):
    spec = {"name": "fixed", "values": [1.0, 2.0, 0.5]} if name == "fixed" else name
    return build_balancer(spec, T)


def _model_losses(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, T))
    x, y = torch.randn(16, 4), torch.randn(16, T)
    losses = ((model(x) - y) ** 2).mean(0) + 0.1     # T positive losses, each reaching every parameter
    return model, losses


def test_every_registered_method_has_a_scale_rule():
    assert set(NAMES) == set(SCALE_EXPONENT)


@pytest.mark.parametrize("name", NAMES)
def test_one_call_returns_the_documented_shape_and_writes_no_grad(name):
    model, losses = _model_losses()
    method = _make(name)
    params = list(model.parameters())
    if method.needs == "losses":
        out = method.task_loss(losses, 3, [losses.detach() * 1.2, losses.detach()])
        assert out.dim() == 0 and torch.isfinite(out) and out.requires_grad   # the trainer differentiates it
    else:
        G = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(l, params, retain_graph=True)])
                         for l in losses])
        w = method.task_weights(G @ G.T) if method.needs == "gramian" else None
        d = method.direction(G)
        assert d.shape == (G.shape[1],) and torch.isfinite(d).all()
        if w is not None:
            assert w.shape == (T,) and torch.isfinite(w).all()
            if name not in RANDOM_OR_STATEFUL:   # the direction is the weights applied to the gradients
                assert torch.allclose(w @ G, d, atol=1e-5), name
    assert all(p.grad is None for p in params), name
    assert all(p.grad is None for p in method.parameters()), name


def _loss_weights(method, losses, history):
    losses = losses.clone().requires_grad_(True)
    (w,) = torch.autograd.grad(method.task_loss(losses, 5, history), losses)
    return w


@settings(max_examples=4, deadline=None)
@given(c=st.floats(0.05, 20.0), seed=st.integers(0, 3))
def test_scaling_every_loss_scales_the_update_as_defined(c, seed):
    torch.manual_seed(seed)
    L = torch.rand(T, dtype=torch.float64) + 0.2
    history = [torch.rand(T, dtype=torch.float64) + 0.5, torch.rand(T, dtype=torch.float64) + 0.5]
    G = torch.randn(T, P, dtype=torch.float64)
    for name in NAMES:
        k = SCALE_EXPONENT[name]
        if name in LOSS_METHODS:
            torch.manual_seed(seed)   # RLW draws its weights from the global generator
            w = _loss_weights(_make(name).double(), L, history)
            torch.manual_seed(seed)
            w_c = _loss_weights(_make(name).double(), c * L, [c * h for h in history])
            # update = sum_t w_t grad L_t and every gradient scales by c: w must scale by c^(k - 1)
            assert torch.allclose(w_c, c ** (k - 1) * w, rtol=1e-4, atol=1e-9), (name, c, w, w_c)
        else:
            torch.manual_seed(seed)   # GradDrop draws its masks from the global generator
            d = _make(name).direction(G)
            torch.manual_seed(seed)
            d_c = _make(name).direction(c * G)
            tol = 1e-3 * max(float(d.norm()), 1e-6) * c ** k     # the QP solvers stop at a tolerance
            assert (d_c - c ** k * d).norm() <= tol, (name, c, d, d_c)
