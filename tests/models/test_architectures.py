"""MTAN, MMoE, CGC and PLE: output shapes, which parameters each task's loss reaches, the registry,
and training through fit_multitask / compare_sharing."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from taskshare import MultiTaskDataset, Task, TaskshareError, TrainConfig
from taskshare.models import MMoE, MTAN, PLE, SHARING, build_sharing
from taskshare.train.compare_sharing import compare_sharing

TASKS = [Task("a", "regression"), Task("b", num_classes=3), Task("c", "binary")]
OUT = {"a": 1, "b": 3, "c": 1}


def mlp():
    return nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), nn.Sequential(nn.Linear(16, 8), nn.ReLU()))


def conv():
    return nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU()))


class PooledHeads(nn.Module):
    """A conv trunk ending in a pool, for architectures whose heads are Linear."""

    def __init__(self):
        super().__init__()
        self.body = conv()

    def forward(self, x):
        return self.body(x).mean((2, 3))


BUILDS = {
    "mmoe": lambda ex: MMoE(mlp, TASKS, ex, num_experts=3),
    "mmoe conv": lambda ex: MMoE(PooledHeads, TASKS, ex, num_experts=2),
    "ple": lambda ex: PLE(mlp, TASKS, ex, shared_experts=2, task_experts=1),
    "cgc": lambda ex: SHARING.get("cgc")(mlp, TASKS, ex),
    "mtan": lambda ex: MTAN(mlp(), TASKS, ex),
}


def _example(name):
    return torch.randn(5, 1, 8, 8) if "conv" in name else torch.randn(5, 6)


@pytest.mark.parametrize("name", list(BUILDS))
def test_shapes_and_requested_tasks(name):
    x = _example(name)
    model = BUILDS[name](x[:2])
    out = model(x)
    assert {t: tuple(o.shape) for t, o in out.items()} == {t: (5, OUT[t]) for t in OUT}
    assert list(model(x, tasks=["b"])) == ["b"]
    with pytest.raises(TaskshareError, match="unknown task 'z'"):
        model(x, tasks=["z"])


def _touched(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("name", list(BUILDS))
def test_each_task_reaches_what_it_shares_and_only_its_own_parts(name):
    x = _example(name)
    model = BUILDS[name](x[:2])
    touched = {t: _touched(model, model(x, tasks=[t])[t].pow(2).mean()) for t in OUT}
    shared = touched["a"] & touched["b"] & touched["c"]
    assert shared                                             # something is shared by all
    for t in OUT:
        own = touched[t] - shared
        assert any(n.startswith(f"heads.{t}.") for n in own)
        for other in OUT:
            if other != t:                                    # no task reaches another's head or gate
                assert not any(f".{other}." in f".{n}" and ("heads" in n or "gates" in n or "attention" in n)
                               for n in touched[t]), (t, other)
    if name.startswith("mmoe"):
        assert all(n.startswith("experts.") for n in shared)
        assert any(n.startswith("experts.1.") for n in shared)   # the gate sends gradient to every expert
    if name == "mtan":
        assert shared == {n for n, _ in model.named_parameters() if n.startswith("trunk.")}
    if name in ("ple", "cgc"):
        assert any(n.startswith("shared.0.") for n in shared)


def test_ple_lower_task_experts_feed_every_task_through_the_shared_gate():
    x = torch.randn(5, 6)
    model = PLE(mlp, TASKS, x[:2])
    touched = _touched(model, model(x, tasks=["a"])["a"].sum())
    assert any(n.startswith("own.0.b.") for n in touched)        # level 0: b's expert feeds the shared mix
    assert not any(n.startswith("own.1.b.") for n in touched)    # the last level: a's gate sees only its own


def test_mtan_on_convolutional_stages_and_bad_trunks():
    x = torch.randn(3, 1, 8, 8)

    class Pool(nn.Module):
        def forward(self, h):
            return h.mean((2, 3))

    model = MTAN(conv(), [Task("seg", num_classes=2)], x[:2])
    model.heads["seg"] = nn.Sequential(Pool(), nn.Linear(6, 2))
    assert model(x)["seg"].shape == (3, 2)
    with pytest.raises(TaskshareError, match="nn.Sequential"):
        MTAN(nn.Linear(6, 3), TASKS, torch.randn(2, 6))
    with pytest.raises(TaskshareError, match="unknown key 'experts'; allowed keys: none"):
        build_sharing("hard", mlp, TASKS, torch.randn(2, 6), experts=3)
    with pytest.raises(TaskshareError, match="unknown sharing mode 'moe'"):
        build_sharing("moe", mlp, TASKS, torch.randn(2, 6))


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    a = (x[:, 0] + x[:, 1] * x[:, 2]).astype(np.float32)
    b = np.digitize(x[:, 3] - x[:, 0], [-0.6, 0.6]).astype(np.int64)
    c = (x[:, 4] > 0).astype(np.float32)
    return MultiTaskDataset(x, {"a": a, "b": b, "c": c})


@pytest.mark.slow
def test_every_architecture_trains_in_compare_sharing():
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=25, batch_size=64, min_steps=0, lr=1e-2, progress=False, device="cpu")
    results = compare_sharing(mlp, TASKS, _data(600, 0), _data(200, 1), _data(300, 2),
                              modes=["single", "mmoe", "ple", "cgc", "mtan"], config=cfg,
                              options={"mmoe": {"num_experts": 3}})
    for r in results:
        # constant predictors: R^2 0, accuracy about 1/3 and 1/2
        assert r.test["a"]["r2"] > 0.5 and r.test["b"]["accuracy"] > 0.75 and r.test["c"]["auroc"] > 0.9, r.mode
        assert math.isfinite(r.delta_m) and (r.delta_m == 0.0) == (r.mode == "single"), (r.mode, r.delta_m)


@pytest.mark.parametrize("mode", ["mmoe", "ple", "mtan"])
def test_gradient_balancing_runs_on_what_the_architecture_shares(mode):
    from taskshare import fit_multitask
    torch.manual_seed(0)
    model = build_sharing(mode, mlp, TASKS, torch.randn(2, 6))
    before = [p.detach().clone() for p in model.parameters()]
    fit_multitask(model, TASKS, _data(64, 0), None, TrainConfig(epochs=2, batch_size=32, min_steps=0, progress=False,
                                                                 device="cpu"), balancer="upgrad")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sum(not torch.equal(a, b) for a, b in zip(before, model.parameters())) == len(before)


def test_yaml_modes_reach_the_registered_architectures():
    from taskshare.errors import ConfigError
    from taskshare.experiments.multitask import load_multitask
    spec = load_multitask({"mode": "multitask", "multitask": {"modes": ["single", "mmoe", "ple", "mtan"],
                                                              "options": {"mmoe": {"num_experts": 3}}}})
    assert spec.multitask.modes == ["single", "mmoe", "ple", "mtan"]
    assert spec.multitask.options == {"mmoe": {"num_experts": 3}}
    with pytest.raises(ConfigError, match="multitask.modes has 'moe'"):
        load_multitask({"mode": "multitask", "multitask": {"modes": ["moe"]}})
