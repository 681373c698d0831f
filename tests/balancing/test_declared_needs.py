"""What a method declares it needs, the trainer supplies: GradNorm is pure math over the losses and
the layer gradients it is handed, and no method writes .grad or calls backward itself."""
import pytest
import torch
from torch import nn

from taskshare import HardSharing, Task, TaskshareError
from taskshare.balancing import BALANCERS, GradNorm
from taskshare.train import Balancing


def test_gradnorm_weighs_the_handed_layer_gradients_without_touching_autograd():
    method = GradNorm(num_tasks=2, alpha=0.0)
    losses = torch.tensor([1.0, 1.0], requires_grad=True)
    layer_grads = torch.stack([torch.full((3, 2), 3.0), torch.full((3, 2), 1.0)])   # norms 3:1
    method.task_loss(losses, layer_grads=layer_grads).backward()
    # alpha 0: the target is the mean weighted norm, so the task with the larger norm loses weight
    assert method.loss_weights.grad[0] > 0 > method.loss_weights.grad[1]
    assert torch.equal(losses.grad, torch.ones(2))              # the losses are weighted by w, detached
    assert torch.equal(method.initial_losses, torch.ones(2))    # L(0) from the global losses (here: these)


def test_gradnorm_reads_the_global_losses_for_its_rates():
    handed = GradNorm(num_tasks=2, alpha=1.0)
    handed.task_loss(torch.tensor([1.0, 1.0]), layer_grads=torch.ones(2, 4), global_losses=torch.tensor([2.0, 4.0]))
    assert torch.equal(handed.initial_losses, torch.tensor([2.0, 4.0]))


def test_a_method_that_needs_layer_gradients_says_so_when_they_are_missing():
    with pytest.raises(TaskshareError, match="needs each task's gradient on the last shared layer"):
        GradNorm(num_tasks=2).task_loss(torch.ones(2))
    with pytest.raises(TaskshareError, match="give model="):
        Balancing("gradnorm", num_tasks=2)


def test_balancing_hands_gradnorm_the_last_trunk_layers_gradients():
    torch.manual_seed(0)
    tasks = [Task("a", "regression"), Task("b", "regression")]
    model = HardSharing(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 5)), tasks, in_features=5)
    seen = {}

    class Spy(GradNorm):
        def layer_loss(self, losses, layer_grads, global_losses):
            seen["grads"] = torch.stack(layer_grads)
            return super().layer_loss(losses, layer_grads, global_losses)

    balancing = Balancing(Spy(num_tasks=2), model=model)
    x, ys = torch.randn(8, 3), {"a": torch.randn(8), "b": torch.randn(8)}
    out = model(x)
    losses = [t.loss(out[t.name], ys[t.name]) for t in tasks]
    expected = [torch.autograd.grad(loss, model.trunk[2].weight, retain_graph=True)[0] for loss in losses]
    balancing.backward(losses)
    assert torch.allclose(seen["grads"], torch.stack(expected))


@pytest.mark.parametrize("name", BALANCERS.names())
def test_no_method_writes_grad_or_runs_backward(name):
    cls = BALANCERS.get(name)
    args = {"num_tasks": 3} if "num_tasks" in getattr(cls, "__dataclass_fields__", {}) else {}
    if name == "fixed":
        args = {"values": [1.0, 2.0, 3.0]}
    method = cls(**args)
    param = nn.Parameter(torch.tensor([0.5, 1.0, 2.0]))
    losses = (param * torch.arange(1.0, 4.0)) ** 2
    if method.needs == "losses":
        out = method.task_loss(losses, 1, [], layer_grads=torch.ones(3, 2)) if method.needs_layer_gradients \
            else method.task_loss(losses, 1, [])
        assert out.dim() == 0 and out.requires_grad
    else:
        method.direction(torch.tensor([[1.0, 0.0], [-0.5, 1.0], [0.2, 0.3]]))
    assert param.grad is None
    assert all(p.grad is None for p in method.parameters())
