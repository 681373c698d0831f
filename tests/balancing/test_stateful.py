"""GradNorm, FAMO and GradVac: their defining rules by hand, and their state through checkpoints."""
import math

import pytest
import torch
from torch import nn

from taskshare import HardSharing, MultiTaskDataset, Task, TaskshareError, TrainConfig, fit_multitask
from taskshare.balancing import FAMO, GradNorm, GradVac, PCGrad
from taskshare.io import load_into
from taskshare.train import Balancing
from taskshare.train.checkpoint import save


def test_gradvac_with_fresh_targets_is_pcgrad_for_two_tasks():
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(GradVac(num_tasks=2).direction(G), PCGrad().direction(G))


def test_gradvac_sets_the_cosine_to_its_target_and_tracks_it():
    G = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)   # cosine 0
    method = GradVac(num_tasks=2, beta=0.25)
    method.targets.fill_(0.5)
    w = method.task_weights(G @ G.T)
    # task 0 alone, adjusted toward task 1: weights (1, c) with cos(g0 + c g1, g1) = 0.5
    w0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    c = (w - w0 - torch.tensor([0.0, 1.0], dtype=torch.float64))   # sum of both adjusted rows minus the originals
    adjusted = (w0 + torch.tensor([0.0, c[1]], dtype=torch.float64)) @ G
    cos = adjusted @ G[1] / (adjusted.norm() * G[1].norm())
    assert float(cos) == pytest.approx(0.5, abs=1e-9)
    assert torch.allclose(method.targets, torch.tensor([[0.5, 0.375], [0.375, 0.5]], dtype=torch.float64))
    with pytest.raises(TaskshareError, match="beta must be in"):
        GradVac(beta=2.0)


def test_famo_gradient_is_scaled_by_inverse_losses_and_logits_follow_slow_tasks():
    famo = FAMO(num_tasks=2)
    losses = torch.tensor([4.0, 1.0], requires_grad=True)
    famo.task_loss(losses).backward()
    # z uniform, c = 1 / (0.5/4 + 0.5/1) = 1.6: gradient c z_t / L_t
    assert torch.allclose(losses.grad, torch.tensor([0.2, 0.8]), atol=1e-6)
    famo.observe(torch.tensor([2.0, 1.0]))       # task 0 halved its loss, task 1 did not move
    z = famo.current_weights()
    assert z[1] > z[0]                           # the lagging task gains weight
    with pytest.raises(TaskshareError, match="built for 2 tasks, got 3"):
        famo.task_loss(torch.ones(3))


def _regression(scales, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    B = torch.randn(8, generator=g)
    return MultiTaskDataset(x, {f"t{i}": s * torch.tanh(x @ (B + 0.1 * torch.randn(8, generator=g)))
                                for i, s in enumerate(scales)})


@pytest.mark.slow
def test_gradnorm_gives_smaller_weights_to_larger_scaled_tasks():
    torch.manual_seed(0)
    scales = [1.0, 10.0]
    tasks = [Task(f"t{i}", "regression") for i in range(2)]
    model = HardSharing(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU()), tasks, in_features=32)
    method = GradNorm(num_tasks=2, alpha=1.5)
    fit_multitask(model, tasks, _regression(scales), None,
                  TrainConfig(epochs=15, batch_size=32, lr=3e-3, min_steps=0, progress=False, device="cpu"),
                  balancer=method)
    w = method.loss_weights.detach()
    assert w[0] > w[1]                                   # inversely ordered to the scales
    assert float(w.sum()) == pytest.approx(2.0, rel=0.05)
    assert (method.initial_losses > 0).all()


def test_gradnorm_needs_a_trunk():
    with pytest.raises(TaskshareError, match="gradnorm needs a shared trunk"):
        Balancing(GradNorm(), model=nn.Linear(2, 2))


@pytest.mark.parametrize("method", [GradNorm(num_tasks=2), FAMO(num_tasks=2), GradVac(num_tasks=2)])
def test_stateful_parts_survive_a_checkpoint(method, tmp_path):
    tasks = [Task("t0", "regression"), Task("t1", "regression")]
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), tasks, in_features=16)
    fit_multitask(model, tasks, _regression([1.0, 3.0], n=64), None,
                  TrainConfig(epochs=3, batch_size=16, min_steps=0, progress=False, device="cpu"), balancer=method)
    state = {k: v.clone() for k, v in method.state_dict().items()}
    assert state and any(not torch.all(v == 0) for v in state.values())
    save(tmp_path / "method.safetensors", method)
    fresh = type(method)(num_tasks=2)
    load_into(fresh, tmp_path / "method.safetensors")
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_famo_without_extra_forward_learns_from_the_next_batch():
    famo = FAMO(num_tasks=2, extra_forward=False)
    famo.task_loss(torch.tensor([4.0, 1.0]))
    famo.task_loss(torch.tensor([1.0, 1.0]))            # observed here: task 0 fell, task 1 did not
    z = famo.current_weights()
    assert z[1] > z[0] and math.isclose(float(z.sum()), 1.0, rel_tol=1e-6)


def test_a_method_of_ones_own_that_observes_steps_is_fed_through_its_declared_calls():
    """fit_multitask reads what a method's losses were before the step only through
    losses_before_step (no FAMO buffer by name): a method with none of FAMO's internals trains, and a
    task the batch lacks (one dataset per task: one task a batch) is observed at that value and
    marked absent in `present`, the mask its present_loss was given too."""
    from taskshare.balancing.base import Balancer, balancer_dataclass

    @balancer_dataclass
    class Watch(Balancer):
        name = "watch"
        num_tasks: int = 2

        def setup(self) -> None:
            self.before, self.seen = None, []

        def loss(self, losses, step, history):
            self.before = losses.detach().float().clone()
            return losses.sum()

        def present_loss(self, losses, step, history, present):
            self.mask = present.clone()
            return self.loss(losses, step, history)

        @property
        def observes_step(self) -> bool:
            return True

        def losses_before_step(self):
            return self.before

        def observe(self, losses_after, present=None):
            assert present is not None and present.tolist() == self.mask.tolist()
            self.seen.append((self.before.clone(), losses_after.clone(), present))

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = {"a": (x[:32], x[:32, 0]), "b": (x[32:], x[32:, 1])}
    tasks = [Task("a", "regression"), Task("b", "regression")]
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), tasks, example=x[:2])
    method = Watch()
    history = fit_multitask(model, tasks, data, config=TrainConfig(epochs=2, batch_size=16, min_steps=0, progress=False),
                            balancer=method)
    assert len(method.seen) == history.steps == 8      # every step observed
    for before, after, present in method.seen:
        lacking = [i for i in range(2) if after[i] == before[i]]
        assert len(lacking) == 1                       # the task not in the batch: its loss before the step
        assert present.tolist() == [i not in lacking for i in range(2)]
        assert after[1 - lacking[0]] != before[1 - lacking[0]]   # the one trained: its loss moved
    with pytest.raises(NotImplementedError, match="does not observe steps"):
        PCGrad().losses_before_step()


def test_balancing_is_a_public_name_at_the_top():
    import taskshare
    assert taskshare.Balancing is Balancing and "Balancing" in taskshare.__all__
