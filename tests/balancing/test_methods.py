"""Property checks run over every registered method, plus each method's defining property by hand."""
import math

import pytest
import torch
from torch import nn

from taskshare import HardSharing, MultiTaskDataset, SoftSharing, Task, TaskshareError, TrainConfig, fit_multitask
from taskshare.balancing import build_balancer
from taskshare.balancing import (BALANCERS, DWA, GLS, IMTLG, IMTLL, MGDA, RLW, AlignedMTL, ConFIG, DualProj,
                                 Fixed, LogScale, PCGrad, Uncertainty, UPGrad)
from taskshare.train.jacobian import sequential_jacobian, shared_jacobian


def feature_gradients(losses, features):
    """(T, *features.shape): each loss's gradient at the features, one backward per task."""
    return torch.stack([torch.autograd.grad(loss, features, retain_graph=True)[0] for loss in losses])

GRADIENT_METHODS = [n for n in BALANCERS.names() if BALANCERS.get(n).needs != "losses"]
NON_CONFLICTING = ["mgda", "upgrad", "dualproj"]
DETERMINISTIC = [n for n in GRADIENT_METHODS if n not in ("pcgrad", "graddrop", "gradvac")]  # these draw random numbers


def make(name, T):
    """A method built the way the trainer builds it (stateful ones sized for T tasks)."""
    return build_balancer(name, T)


def random_grads(T=4, P=7, seed=0):
    return torch.randn(T, P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize("seed", range(5))
def test_finite_direction_of_the_right_shape(name, seed):
    d = make(name, 4).direction(random_grads(seed=seed))
    assert d.shape == (7,) and torch.isfinite(d).all()


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_permuting_tasks_leaves_the_direction_unchanged(name):
    G = random_grads(seed=3)
    perm = torch.tensor([2, 0, 3, 1])
    method = make(name, 4)
    assert torch.allclose(method.direction(G), method.direction(G[perm]), atol=1e-6)


@pytest.mark.parametrize("name", [n for n in GRADIENT_METHODS if BALANCERS.get(n).needs == "gramian"])
def test_identical_tasks_get_identical_weights(name):
    g = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    w = make(name, 3).task_weights(g.repeat(3, 1) @ g.repeat(3, 1).T)
    assert torch.allclose(w, w[0].expand(3), atol=1e-6)


@pytest.mark.parametrize("name", NON_CONFLICTING)
@pytest.mark.parametrize("seed", range(10))
def test_update_never_conflicts_with_a_task(name, seed):
    G = random_grads(T=5, P=8, seed=seed)
    d = make(name, len(G)).direction(G)
    assert (G @ d >= -1e-6 * G.norm() * max(d.norm(), 1e-12)).all()


def test_hand_cases_orthogonal_and_opposite():
    orth = torch.eye(2, dtype=torch.float64)
    for m in (MGDA(), UPGrad(), IMTLG()):
        assert torch.allclose(m.direction(orth), torch.tensor([0.5, 0.5], dtype=torch.float64), atol=1e-8)
    assert torch.allclose(PCGrad().direction(orth), torch.tensor([1.0, 1.0], dtype=torch.float64))
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    for m in (MGDA(), UPGrad(), PCGrad()):
        assert torch.allclose(m.direction(opposite), torch.zeros(2, dtype=torch.float64), atol=1e-8)


def test_mgda_is_the_min_norm_point_of_the_hull():
    G = random_grads(T=3, P=5, seed=1)
    d = MGDA().direction(G)
    for _ in range(200):  # no random convex combination is shorter
        w = torch.distributions.Dirichlet(torch.ones(3, dtype=torch.float64)).sample()
        assert (w @ G).norm() >= d.norm() - 1e-7


def test_imtl_g_gives_equal_projections_on_unit_gradients():
    G = random_grads(T=3, P=6, seed=2) * torch.tensor([[1.0], [10.0], [0.1]], dtype=torch.float64)
    d = IMTLG().direction(G)
    proj = (G / G.norm(dim=1, keepdim=True)) @ d
    assert torch.allclose(proj, proj[0].expand(3), atol=1e-8)


def test_pcgrad_projects_conflicting_pairs_by_hand():
    g1, g2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 1.0], dtype=torch.float64)
    expected = (g1 - (g1 @ g2) / (g2 @ g2) * g2) + (g2 - (g2 @ g1) / (g1 @ g1) * g1)
    assert torch.allclose(PCGrad().direction(torch.stack([g1, g2])), expected)


def test_loss_weighting_by_hand():
    losses = torch.tensor([2.0, 0.5])
    u = Uncertainty(num_tasks=2)
    with torch.no_grad():
        u.log_vars.copy_(torch.tensor([math.log(2.0), 0.0]))
    assert u.task_loss(losses).item() == pytest.approx(2.0 / 2 + math.log(2.0) + 0.5)
    assert "log_vars" in u.state_dict()  # saved and restored with checkpoints
    history = [torch.tensor([1.0, 1.0]), torch.tensor([0.5, 1.0])]  # task 0 improving faster
    w = 2 * torch.softmax(torch.tensor([0.5, 1.0]) / 2.0, 0)
    assert DWA().task_loss(losses, 3, history).item() == pytest.approx(float(w @ losses))
    assert Fixed(values=[1.0, 3.0]).task_loss(losses).item() == pytest.approx(3.5)
    torch.manual_seed(0)
    assert RLW().task_loss(torch.ones(3)).item() == pytest.approx(3.0)


@pytest.mark.parametrize("name,key,rule", [("uncertainty", "log_vars", lambda s, losses: torch.exp(-s) * losses + s),
                                           ("imtl_l", "scales", lambda s, losses: torch.exp(s) * losses - s)])
def test_learned_loss_weights_load_from_checkpoints_as_saved(name, key, rule, tmp_path):
    """Uncertainty and IMTL-L share one skeleton; each keeps the state_dict key its checkpoints were
    written with: a file holding that key alone loads strictly, and its values drive the loss."""
    from taskshare.io import load_into, save_tensors
    from taskshare.train import Balancing
    saved = {key: torch.tensor([0.5, -0.25, 1.0])}
    path = save_tensors(tmp_path / f"{name}.safetensors", saved, {})
    method = build_balancer(name, 3)
    load_into(method, path)                      # strict: a renamed key would be missing here
    assert list(method.state_dict()) == [key] and torch.equal(method.state_dict()[key], saved[key])
    losses = torch.tensor([1.0, 2.0, 3.0])
    assert method.task_loss(losses).item() == pytest.approx(float(rule(saved[key], losses).sum()))
    balancing = Balancing(name, num_tasks=3)     # the drop-in's own checkpoint nests the same key
    balancing.load_state_dict({"balancer": dict(saved), "history": [], "epoch": [], "step": 4})
    assert torch.equal(balancing.state_dict()["balancer"][key], saved[key])
    with pytest.raises(TaskshareError, match=f"{name}: built for 3 tasks, got 2 losses"):
        method.task_loss(losses[:2])


def test_repr_echoes_hyperparameters():
    assert repr(DWA(temperature=1.5)) == "DWA(temperature=1.5)"
    assert repr(Uncertainty(num_tasks=3)).startswith("Uncertainty(num_tasks=3")


def test_batched_jacobian_equals_one_backward_per_task():
    torch.manual_seed(0)
    tasks = [Task("a", num_classes=3), Task("b", "regression"), Task("c", "binary")]
    model = HardSharing(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU()), tasks, in_features=6)
    x = torch.randn(16, 5)
    z = model.forward_features(x)
    out = model.forward_heads(z)
    ys = {"a": torch.randint(0, 3, (16,)), "b": torch.randn(16), "c": torch.randint(0, 2, (16,)).float()}
    losses = [t.loss(out[t.name], ys[t.name]) for t in tasks]
    shared = list(model.trunk.parameters())
    fast = shared_jacobian(feature_gradients(losses, z), z, shared)
    assert torch.allclose(fast, sequential_jacobian(losses, shared), atol=1e-6)
    assert torch.allclose(shared_jacobian(feature_gradients(losses, z), z, shared, chunk=1), fast, atol=1e-6)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    return MultiTaskDataset(x, {"a": (x[:, 0] > 0).long(), "b": x[:, 1] - x[:, 2]})


TWO = [Task("a", num_classes=2), Task("b", "regression")]


@pytest.mark.parametrize("name", BALANCERS.names())
def test_every_method_trains_a_hard_sharing_model(name):
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), TWO, in_features=16)
    spec = {"name": "fixed", "values": [1.0, 2.0]} if name == "fixed" else name
    data = _data()
    start = _total_loss(model, data)
    cfg = TrainConfig(epochs=5, batch_size=16, lr=1e-2, min_steps=0, progress=False, device="cpu")
    fit_multitask(model, TWO, data, None, cfg, balancer=spec)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # each method weighs the tasks its own way, but every one must make progress on both of them
    assert _total_loss(model, data) < 0.9 * start, name


def _total_loss(model, data):
    """The plain sum of the task losses over the whole training set."""
    model.eval()
    with torch.no_grad():
        out = model(data.x)
        return sum(float(t.loss(out[t.name], data.labels[t.name])) for t in TWO)


def test_representation_level_and_bad_combinations():
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), TWO, in_features=16)
    cfg = TrainConfig(epochs=2, min_steps=0, progress=False, device="cpu")
    fit_multitask(model, TWO, _data(), None, cfg, balancer="mgda", representation=True)
    with pytest.raises(TaskshareError, match="representation level applies to gradient methods"):
        fit_multitask(model, TWO, _data(), None, cfg, balancer="dwa", representation=True)
    soft = SoftSharing(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), TWO, in_features=16)
    with pytest.raises(TaskshareError, match="representation level needs shared features"):
        fit_multitask(soft, TWO, _data(), None, cfg, balancer="upgrad", representation=True)
    with pytest.raises(TaskshareError, match="unknown balancing method 'gradnorm2'"):
        fit_multitask(model, TWO, _data(), None, cfg, balancer="gradnorm2")


def test_aligned_mtl_and_config_by_hand():
    G = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # Aligned-MTL: singular values set to the smallest (1): the gradients become e1, e2; their mean
    assert torch.allclose(AlignedMTL().direction(G), torch.tensor([0.5, 0.5], dtype=torch.float64))
    # ConFIG: equal-cosine unit direction (1, 1)/sqrt(2), length sum of projections (3 + 1)/sqrt(2)
    assert torch.allclose(ConFIG().direction(G), torch.tensor([2.0, 2.0], dtype=torch.float64))
    G = random_grads(T=3, P=6, seed=4)
    d = ConFIG().direction(G)
    cos = (G / G.norm(dim=1, keepdim=True)) @ (d / d.norm())
    assert torch.allclose(cos, cos[0].expand(3), atol=1e-8) and (cos > 0).all()
    assert torch.allclose(DualProj().direction(torch.eye(2, dtype=torch.float64)),
                          torch.tensor([0.5, 0.5], dtype=torch.float64), atol=1e-8)


def test_scale_free_loss_methods_by_hand():
    losses = torch.tensor([4.0, 1.0])
    assert GLS().task_loss(losses).item() == pytest.approx(2.0)
    assert LogScale().task_loss(losses).item() == pytest.approx(math.log(4.0), rel=1e-6)
    assert IMTLL(num_tasks=2).task_loss(losses).item() == pytest.approx(5.0)
    # log scaling: each task's gradient is divided by its own loss
    z = torch.tensor([4.0, 1.0], requires_grad=True)
    LogScale().task_loss(z * 1.0).backward()
    assert torch.allclose(z.grad, torch.tensor([0.25, 1.0]))


@pytest.mark.parametrize("engine", ["batched", "sequential"])
def test_per_parameter_engines_match_the_reference_jacobian(engine):
    from taskshare.train.jacobian import gramian_of, per_task_grads, write_weighted
    torch.manual_seed(0)
    tasks = [Task("a", num_classes=3), Task("b", "regression")]
    model = HardSharing(nn.Sequential(nn.Linear(5, 8), nn.Tanh()), tasks, in_features=8)
    x, ys = torch.randn(16, 5), {"a": torch.randint(0, 3, (16,)), "b": torch.randn(16)}
    z = model.forward_features(x)
    out = model.forward_heads(z)
    losses = [t.loss(out[t.name], ys[t.name]) for t in tasks]
    shared = list(model.trunk.parameters())
    stacks = per_task_grads(feature_gradients(losses, z), z, shared, engine)
    J = sequential_jacobian(losses, shared)
    assert torch.allclose(gramian_of(stacks).float(), J @ J.T, atol=1e-5)
    w = torch.tensor([0.3, 0.7])
    write_weighted(shared, stacks, w)
    assert torch.allclose(torch.cat([p.grad.reshape(-1) for p in shared]), w @ J, atol=1e-6)


def test_cagrad_inner_problem_beats_a_grid_and_limits():
    from taskshare.balancing import CAGrad
    from taskshare.balancing.cagrad import cagrad_inner
    G = torch.tensor([[1.0, 0.3], [-0.6, 1.0]], dtype=torch.float64)
    K = G @ G.T
    radius = 0.5 * float((G.mean(0)).norm())
    w = cagrad_inner(K, radius)
    b = torch.full((2,), 0.5, dtype=torch.float64)

    def f(v):
        return float(v @ K @ b + radius * (v @ K @ v).sqrt())

    grid = min(f(torch.tensor([a, 1 - a], dtype=torch.float64)) for a in torch.linspace(0, 1, 2001).tolist())
    assert f(w) <= grid + 1e-9
    assert torch.allclose(CAGrad(c=0.0).direction(G), G.mean(0))  # c = 0: the mean gradient
    d = CAGrad(c=0.5, rescale=False).direction(G)
    assert (d - G.mean(0)).norm() <= radius + 1e-9  # stays in the ball around the mean
    assert float((G @ d).min()) >= float((G @ G.mean(0)).min()) - 1e-9  # the worst task does no worse


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_nash_and_fairgrad_solve_their_defining_equation(alpha):
    from taskshare.balancing import FairGrad, NashMTL
    G = random_grads(T=4, P=9, seed=5)
    K = G @ G.T
    w = FairGrad(alpha=alpha).task_weights(K)
    assert (w > 0).all()
    assert torch.allclose(K @ w, w ** (-1 / alpha), rtol=1e-6)
    if alpha == 1.0:
        assert torch.allclose(NashMTL().task_weights(K), w, rtol=1e-8)
    # orthogonal gradients: Nash weights are 1/|g_i|, the update the sum of unit gradients
    D = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(NashMTL().direction(D), torch.tensor([1.0, 1.0], dtype=torch.float64), atol=1e-8)


@pytest.mark.slow
def test_graddrop_keeps_one_sign_per_coordinate():
    from taskshare.balancing import GradDrop
    agree = torch.tensor([[1.0, -2.0], [3.0, -1.0]])
    assert torch.allclose(GradDrop().direction(agree), agree.sum(0))  # same signs: plain sum
    torch.manual_seed(0)
    opposite = torch.tensor([[2.0, 1.0], [-1.0, -1.0]])
    for _ in range(20):
        d = GradDrop().direction(opposite)
        assert d[0].item() in (2.0, -1.0) and d[1].item() in (1.0, -1.0)
    # the positive side survives with probability P = (1 + sum / sum|.|) / 2 = 2/3 for coordinate 0
    torch.manual_seed(1)
    share = sum(GradDrop().direction(opposite)[0].item() > 0 for _ in range(3000)) / 3000
    assert abs(share - 2 / 3) < 0.03
    assert torch.allclose(GradDrop(leak=1.0).direction(opposite), opposite.sum(0))


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_all_zero_gradients_give_a_finite_update(name):
    d = make(name, 3).direction(torch.zeros(3, 5, dtype=torch.float64))
    assert d.shape == (5,) and torch.isfinite(d).all()
