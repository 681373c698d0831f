"""The Linear-layer kernel Gramian and the one-backward feature gradients give exactly what one full
backward per task gives, on trunks that mix kernel-able and generic layers."""
import pytest
import torch
from torch import nn

from taskshare import HardSharing, Task, TaskshareError
from taskshare.balancing import BALANCERS, Balancer, balancer_dataclass, sequential_jacobian
from taskshare.balancing._qp import _accelerated_projected_gradient, active_set_qp, project_simplex
from taskshare.balancing.linear_kernel import LinearCapture, _kernel_cheaper
from taskshare.train.balanced import BalancedStep


@balancer_dataclass
class Spy(Balancer):
    """Fixed weights; remembers the Gramian it was given."""

    name = "spy"
    needs = "gramian"

    def weights(self, gramian):
        self.seen = gramian
        return torch.linspace(0.5, 1.5, gramian.shape[0], dtype=gramian.dtype)


class Twice(nn.Module):
    """A Linear applied twice (weight tying): left to the generic path."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return torch.tanh(self.lin(torch.tanh(self.lin(x))))


TRUNKS = {
    "mlp": lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh()),
    "norm+no-bias": lambda: nn.Sequential(nn.Linear(5, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8)),
    "tied": lambda: nn.Sequential(nn.Linear(5, 8), Twice()),
    "wide input": lambda: nn.Sequential(nn.Linear(5, 300), nn.ReLU(), nn.Linear(300, 8)),
}


@pytest.mark.parametrize("trunk", list(TRUNKS))
@pytest.mark.parametrize("engine", ["kernel", "sequential", "batched"])
def test_balanced_step_matches_one_full_backward_per_task(trunk, engine):
    torch.manual_seed(0)
    tasks = [Task("a", num_classes=3), Task("b", "regression"), Task("c", "binary")]
    model = HardSharing(TRUNKS[trunk](), tasks, in_features=8)
    x = torch.randn(12, 5)
    ys = {"a": torch.randint(0, 3, (12,)), "b": torch.randn(12), "c": torch.randint(0, 2, (12,)).float()}
    shared = list(model.trunk.parameters())
    out = model(x)
    losses = [t.loss(out[t.name], ys[t.name]) for t in tasks]
    J = sequential_jacobian(losses, shared)
    head_ref = torch.autograd.grad(sum(losses), list(model.heads.parameters()))

    spy = Spy()
    step = BalancedStep(spy, tasks, model, engine=engine)
    out = step.forward(model, x, [t.name for t in tasks])
    parts = {t.name: t.loss(out[t.name], ys[t.name]) for t in tasks}
    step.backward(step.total(parts), parts)
    assert torch.allclose(spy.seen.float(), J @ J.T, rtol=1e-4, atol=1e-5)
    w = torch.linspace(0.5, 1.5, 3)
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    assert torch.allclose(got, w @ J, rtol=1e-4, atol=1e-6)
    for p, g in zip(model.heads.parameters(), head_ref):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_capture_sees_only_single_use_trainable_linears_and_removes_its_hooks():
    trunk = nn.Sequential(nn.Linear(5, 8), Twice(), nn.Linear(8, 4))
    trunk[2].weight.requires_grad_(False)
    capture = LinearCapture(trunk, [p for p in trunk.parameters() if p.requires_grad])
    assert capture.layers == [trunk[0], trunk[1].lin]
    with capture:
        trunk(torch.randn(3, 5))
    assert [m for m, _, _ in capture.usable()] == [trunk[0]]   # the tied one was called twice
    assert not trunk[0]._forward_hooks and not trunk[1].lin._forward_hooks


def test_kernel_is_chosen_only_when_cheaper():
    assert _kernel_cheaper(256, 784, 512, 10)        # batch smaller than the layer
    assert not _kernel_cheaper(4096, 64, 64, 10)     # big batch, small layer: explicit gradients


def test_unknown_engine_is_named():
    model = HardSharing(nn.Linear(5, 8), [Task("a", num_classes=2)], in_features=8)
    with pytest.raises(TaskshareError, match="engine must be .* got 'fast'"):
        BalancedStep(BALANCERS.get("mgda")(), [Task("a", num_classes=2)], model, engine="fast")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(30))
def test_active_set_qp_is_at_least_as_good_as_long_projected_gradient(seed):
    g = torch.Generator().manual_seed(seed)
    T = int(torch.randint(2, 9, (1,), generator=g))
    G = torch.randn(T, int(torch.randint(1, 12, (1,), generator=g)), generator=g, dtype=torch.float64) + 0.5
    K = G @ G.T
    w = active_set_qp(K, K.new_zeros(T), simplex=True)
    ref = _accelerated_projected_gradient(K, K.new_full((T,), 1 / T), project_simplex, 20000, 1e-14)
    assert w.min() >= 0 and abs(float(w.sum()) - 1) < 1e-9
    assert float(w @ K @ w) <= float(ref @ K @ ref) + 1e-9 * max(1.0, float(ref @ K @ ref))
    lower = torch.eye(T, dtype=torch.float64)[0]
    v = active_set_qp(K, lower, simplex=False)
    ref = _accelerated_projected_gradient(K, lower, lambda u: torch.maximum(u, lower), 20000, 1e-14)
    assert (v >= lower - 1e-12).all()
    assert float(v @ K @ v) <= float(ref @ K @ ref) + 1e-9 * max(1.0, float(ref @ K @ ref))


@pytest.mark.parametrize("representation", [False, True])
def test_fp16_with_a_grad_scaler_shows_the_method_unscaled_gradients(representation):
    from taskshare import MultiTaskDataset, TrainConfig, fit_multitask

    class First(Spy):
        def weights(self, gramian):
            self.first = getattr(self, "first", gramian)
            return super().weights(gramian)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    data = MultiTaskDataset(x, {"a": (x[:, 0] > 0).long(), "b": x[:, 1], "c": (x[:, 2] > 0).float()})
    tasks = [Task("a", num_classes=2), Task("b", "regression"), Task("c", "binary")]
    seen = {}
    for amp in ("off", "fp16"):
        torch.manual_seed(0)
        model = HardSharing(TRUNKS["mlp"](), tasks, in_features=8)
        spy = First()
        fit_multitask(model, tasks, data, None, TrainConfig(epochs=1, batch_size=32, min_steps=0, progress=False,
                                                            device="cpu", amp=amp), balancer=spy,
                      representation=representation)
        seen[amp] = spy.first.float()
        assert all(torch.isfinite(p).all() for p in model.parameters())
    # the scaler's factor (65536 at the start) is divided out before the method sees the Gramian
    assert torch.allclose(seen["fp16"], seen["off"], rtol=0.05, atol=1e-4)
