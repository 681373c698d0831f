"""The Conv2d kernel (per-task output gradients and unfolded inputs) gives what one full backward per
task gives: the same Gramian and the same written update, for every method that uses the Gramian."""
import pytest
import torch
from torch import nn

from taskshare import HardSharing, Task
from taskshare.balancing import BALANCERS, build_balancer
from taskshare.train import Balancing
from taskshare.train.jacobian import sequential_jacobian
from taskshare.train.conv_kernel import LayerCapture, conv_task_grads
from taskshare.train.balanced import BalancedStep

GRAMIAN_METHODS = [n for n in BALANCERS.names() if BALANCERS.get(n).needs == "gramian"]


def conv_trunk() -> nn.Module:
    """Strides, dilation, a bias-free conv, a BatchNorm and a Linear: every path of the kernel at once."""
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, bias=False), nn.BatchNorm2d(6),
                         nn.Tanh(), nn.Conv2d(6, 5, (2, 3), stride=(1, 2)), nn.ReLU(), nn.Flatten(),
                         nn.Linear(5 * 3 * 2, 8), nn.Tanh())


def setup(seed: int = 0):
    torch.manual_seed(seed)
    tasks = [Task("a", num_classes=3), Task("b", "regression"), Task("c", "binary")]
    model = HardSharing(conv_trunk(), tasks, in_features=8).double()
    x = torch.randn(6, 2, 8, 9, dtype=torch.float64)
    ys = {"a": torch.randint(0, 3, (6,)), "b": torch.randn(6, dtype=torch.float64),
          "c": torch.randint(0, 2, (6,)).double()}
    return tasks, model, x, ys


def reference(model, tasks, x, ys):
    """The per-task Jacobian on the trunk from one full backward per task."""
    out = model(x)
    losses = [t.loss(out[t.name], ys[t.name]) for t in tasks]
    return sequential_jacobian(losses, list(model.trunk.parameters()))


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_conv_kernel_matches_the_per_task_jacobian_for_every_gramian_method(name):
    tasks, model, x, ys = setup()
    J = reference(model, tasks, x, ys)
    torch.manual_seed(1)
    expected = build_balancer(name, len(tasks)).task_weights(J @ J.T) @ J

    seen = {}
    method = build_balancer(name, len(tasks))
    original = method.solve_weights      # every method's weights go through it (CAGrad's bypass `weights`)

    def spying(K, present, rounding):
        seen["K"] = K
        return original(K, present, rounding)
    method.solve_weights = spying
    step = BalancedStep(method, tasks, model, engine="kernel")
    assert sum(type(m) is nn.Conv2d for m in step.capture.layers) == 3
    torch.manual_seed(1)
    out = step.forward(model, x, [t.name for t in tasks])
    parts = {t.name: t.loss(out[t.name], ys[t.name]) for t in tasks}
    step.backward(step.total(parts), parts)
    assert {type(m) for m, _, _ in step.capture.usable()} == {nn.Conv2d, nn.Linear}
    assert torch.allclose(seen["K"], J @ J.T, rtol=1e-5, atol=1e-8)
    got = torch.cat([p.grad.reshape(-1) for p in model.trunk.parameters()])
    assert expected.norm() > 1e-3
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-8)


def test_drop_in_kernel_engine_on_a_conv_trunk_equals_the_sequential_engine():
    grads = {}
    for engine in ("kernel", "sequential"):
        tasks, model, x, ys = setup(3)
        balancing = Balancing("upgrad", engine=engine)
        with balancing.capture(model.trunk):
            z = model.trunk(x)
        out = model.forward_heads(z)
        balancing.backward([t.loss(out[t.name], ys[t.name]) for t in tasks], features=z)
        grads[engine] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads["kernel"], grads["sequential"]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-10)


def test_conv_task_grads_is_each_tasks_weight_gradient():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1)
    x = torch.randn(5, 3, 7, 6)
    y = conv(x)
    delta = torch.randn(2, *y.shape)
    got = conv_task_grads(conv, x, delta)
    for t in range(2):
        (want,) = torch.autograd.grad(y, conv.weight, delta[t], retain_graph=True)
        assert torch.allclose(got[t], want, atol=1e-5)


def test_only_the_kernel_engine_captures_convolutions_and_unfoldable_ones_only():
    trunk = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3, groups=2), nn.Conv2d(2, 2, 3, padding="same"),
                          nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(8, 3))
    shared = list(trunk.parameters())
    assert LayerCapture(trunk, shared, convs=True).layers == [trunk[5], trunk[0]]
    assert LayerCapture(trunk, shared, convs=False).layers == [trunk[5]]
    tasks = [Task("a", num_classes=2), Task("b", num_classes=2)]
    model = HardSharing(trunk, tasks, in_features=3)
    assert BalancedStep(build_balancer("upgrad", 2), tasks, model).capture.layers == [trunk[5]]
