"""One dataset per task with a gradient-balancing method: each step holds a batch of every task
(the "joint" sampler), so the method combines every task's gradient of that step."""
import numpy as np
import pytest
import torch
from torch import nn

from taskshare import HardSharing, Task, TaskshareError, TrainConfig, fit_multitask
from taskshare.balancing import build_balancer
from taskshare.data.multitask import JointLabels, TaskLoader

TASKS = [Task("a", "regression"), Task("b", "regression")]


def _data(n_a=96, n_b=64):
    r = np.random.default_rng(0)
    xa, xb = r.normal(size=(n_a, 8)).astype(np.float32), r.normal(size=(n_b, 8)).astype(np.float32)
    return {"a": (xa, xa[:, 0] + xa[:, 1]), "b": (xb, xb[:, 0] - 3 * xb[:, 2])}


def _fit(balancer, sampler=None, data=None, representation=False):
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), TASKS, example=torch.zeros(2, 8))
    kwargs = {} if sampler is None else {"sampler": sampler}
    kwargs["representation"] = representation
    history = fit_multitask(model, TASKS, data or _data(), None, TrainConfig(epochs=2, min_steps=0, batch_size=16,
                                                                            seed=0, progress=False),
                            balancer=balancer, **kwargs)
    return model, history


def test_joint_batches_hold_every_task_each_in_its_own_rows():
    data = _data()
    loader = TaskLoader(data, batch_size=16, sampler="joint", seed=0)
    assert len(loader) == 6                                   # one pass over the larger task (96 / 16)
    for x, ys in loader:
        assert isinstance(ys, JointLabels) and list(ys) == ["a", "b"] and len(x) == 32
        rows = ys.rows()
        assert torch.equal(ys["a"], x[rows["a"], 0] + x[rows["a"], 1])
        assert torch.allclose(ys["b"], x[rows["b"], 0] - 3 * x[rows["b"], 2])


def test_joint_sampler_needs_one_input_shape():
    data = {"a": (np.zeros((20, 8), np.float32), np.zeros(20, np.float32)),
            "b": (np.zeros((20, 5), np.float32), np.zeros(20, np.float32))}
    with pytest.raises(TaskshareError, match="one shape"):
        next(iter(TaskLoader(data, batch_size=10, sampler="joint")))


@pytest.mark.parametrize("balancer", ["mgda", "upgrad"])
def test_gradient_methods_balance_every_task_of_a_step(balancer):
    """On single-task batches MGDA and UPGrad were handed one gradient each step: the same parameters
    as no balancing. With a batch of every task they balance, and the parameters differ."""
    plain, history = _fit(None, "joint")
    balanced, balanced_history = _fit(balancer)
    assert balanced_history.steps == history.steps == 2 * 6
    differ = [not torch.allclose(p, q) for p, q in zip(plain.trunk.parameters(), balanced.trunk.parameters())]
    assert any(differ)


def test_gradvac_runs_on_one_dataset_per_task_and_learns_its_targets():
    method = build_balancer({"name": "gradvac", "beta": 0.5}, 2)
    _fit(method)              # was: "gradvac: built for 2 tasks, got 1"
    assert method.targets[0, 1] != 0 and method.targets[1, 0] != 0


def test_a_single_task_sampler_with_a_gradient_method_names_the_joint_one():
    with pytest.raises(TaskshareError, match="sampler='joint'"):
        _fit("mgda", "round_robin")


def test_loss_weighting_keeps_single_task_batches_and_may_ask_for_joint_ones():
    _, history = _fit("famo")
    assert history.steps == 2 * (6 + 4)                       # every task's batches, one at a time
    _, joint = _fit("famo", "joint")
    assert joint.steps == 2 * 6


@pytest.mark.parametrize("sampler", [None, "joint"])
@pytest.mark.parametrize("balancer", ["upgrad", "pcgrad", "mgda"])
def test_representation_level_on_one_dataset_per_task_stops_and_names_the_parameter_level(balancer, sampler):
    # each task owns its rows of a joint batch: the feature gradients never overlap, the Gramian is
    # diagonal, and UPGrad / PCGrad trained to within 3e-8 of the plain average
    with pytest.raises(TaskshareError, match="representation=False"):
        _fit(balancer, sampler, representation=True)
    _fit(balancer, sampler)                                   # the parameter level runs


def test_representation_level_on_shared_inputs_still_runs():
    from taskshare import MultiTaskDataset
    r = np.random.default_rng(1)
    x = r.normal(size=(64, 8)).astype(np.float32)
    data = MultiTaskDataset(x, {"a": x[:, 0] + x[:, 1], "b": x[:, 0] - 3 * x[:, 2]})
    plain, _ = _fit(None, data=data)
    balanced, history = _fit("upgrad", data=data, representation=True)
    assert history.steps == 2 * 4
    assert any(not torch.allclose(p, q) for p, q in zip(plain.trunk.parameters(), balanced.trunk.parameters()))


def test_gradnorm_on_one_dataset_per_task_balances_a_batch_of_every_task():
    """GradNorm equalises the tasks' gradient norms at one step: on the single-task batches it used to
    get, it trained bit-identically to no balancer. It now gets the joint sampler by default."""
    plain, history = _fit(None, "joint")
    balanced, balanced_history = _fit("gradnorm")
    assert balanced_history.steps == history.steps == 2 * 6
    assert any(not torch.allclose(p, q) for p, q in zip(plain.trunk.parameters(), balanced.trunk.parameters()))
    with pytest.raises(TaskshareError, match="sampler='joint'"):
        _fit("gradnorm", "proportional")
