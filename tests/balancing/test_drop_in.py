"""The drop-in call in a plain loop ends with the parameters fit_multitask reaches: every sharing mode,
parameter and representation level, stateful methods."""
import numpy as np
import pytest
import torch
from torch import nn

from taskshare import CrossStitch, HardSharing, MultiTaskDataset, SoftSharing, Task, TaskshareError, TrainConfig, fit_multitask
from taskshare.train.drop_in import Balancing, backward, graph_leaves, shared_leaves
from taskshare.data.multitask import MultiTaskLoader

TASKS = [Task("pos", "binary"), Task("score", "regression"), Task("kind", num_classes=3)]


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    pos = (x[:, 0] > 0).astype(np.float32)
    pos[::4] = np.nan                                      # some labels unknown
    score = (x[:, 1] - 2 * x[:, 2]).astype(np.float32)
    kind = (np.digitize(x[:, 3] + x[:, 0], [-0.5, 0.5])).astype(np.int64)
    return MultiTaskDataset(x, {"pos": pos, "score": score, "kind": kind})


def _model(mode):
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Sequential(nn.Linear(16, 12), nn.ReLU()))
    if mode == "hard":
        return HardSharing(trunk, TASKS, in_features=12)
    if mode == "soft":
        return SoftSharing(trunk, TASKS, in_features=12, coupling=1e-2)
    return CrossStitch(trunk, TASKS, in_features=12)


CONFIG = dict(epochs=3, batch_size=32, min_steps=0, lr=1e-2, weight_decay=0.0, schedule="constant", warmup=0.0,
              clip_grad=None, progress=False, device="cpu")


def _plain_loop(model, method, representation=False):
    """What a researcher writes: their own forward, loss and optimizer; one call replaces backward()."""
    cfg = TrainConfig(**CONFIG)
    balancing = Balancing(method, num_tasks=len(TASKS), representation=representation, model=model)
    groups = [{"params": list(model.parameters())}]
    if list(balancing.parameters()):
        groups.append({"params": list(balancing.parameters()), "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0)
    loader = MultiTaskLoader(_data(), cfg.batch_size, True, cfg.seed)
    for _ in range(cfg.epochs):
        for x, ys in loader:
            opt.zero_grad()
            if isinstance(model, HardSharing):
                with balancing.capture(model.trunk):
                    z = model.trunk(x)
                out = model.forward_heads(z)
                losses = [t.loss(out[t.name], ys[t.name]) for t in TASKS]
                balancing.backward(losses, features=z)
            else:
                out = model(x)
                balancing.backward([t.loss(out[t.name], ys[t.name]) for t in TASKS])
                if isinstance(model, SoftSharing):
                    model.penalty().backward()
            opt.step()
            if balancing.wants_after_step:
                with torch.no_grad():
                    out = model(x)
                    balancing.after_step([t.loss(out[t.name], ys[t.name]) for t in TASKS])
        balancing.end_epoch()
    return model


CASES = [("hard", "upgrad", False), ("hard", "mgda", True), ("hard", "config", False), ("hard", "config", True),
         ("hard", "dwa", False), ("hard", "uncertainty", False), ("hard", "famo", False), ("hard", "gradnorm", False),
         ("soft", "upgrad", False), ("soft", "nash_mtl", False), ("cross_stitch", "upgrad", False),
         ("cross_stitch", "imtl_g", False)]


@pytest.mark.parametrize("mode,method,representation", CASES)
def test_plain_loop_reaches_the_parameters_of_fit_multitask(mode, method, representation):
    reference = _model(mode)
    fit_multitask(reference, TASKS, _data(), None, TrainConfig(**CONFIG), balancer=method,
                  representation=representation)
    mine = _plain_loop(_model(mode), method, representation)
    start = _model(mode)
    moved = max(float((a - b).abs().max().detach()) for a, b in zip(reference.parameters(), start.parameters()))
    assert moved > 1e-2                           # training did move them, so the match is not trivial
    for (name, a), b in zip(reference.named_parameters(), mine.parameters()):
        assert torch.allclose(a, b, atol=2e-5, rtol=1e-4), name


def test_the_kernel_path_is_taken_and_matches_the_generic_one():
    model = _model("hard")
    x, ys = next(iter(MultiTaskLoader(_data(), 32, False)))
    grads = []
    for use_capture in (True, False):
        model.zero_grad()
        balancing = Balancing("upgrad")
        with (balancing.capture(model.trunk) if use_capture else torch.enable_grad()):
            z = model.trunk(x)
        if use_capture:
            assert len(balancing._capture.usable()) == 2
        out = model.forward_heads(z)
        balancing.backward([t.loss(out[t.name], ys[t.name]) for t in TASKS], features=z)
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


def test_shared_leaves_are_what_two_tasks_reach():
    soft, stitch = _model("soft"), _model("cross_stitch")
    x = torch.randn(4, 6)
    out = soft(x)
    assert shared_leaves([out[t.name].sum() for t in TASKS]) == []     # each tower serves one task
    out = stitch(x)
    shared = {id(p) for p in shared_leaves([out[t.name].sum() for t in TASKS])}
    assert shared == {id(p) for n, p in stitch.named_parameters() if not n.startswith("heads.")}
    hard = _model("hard")
    z = hard.trunk(x)
    assert {id(p) for p in graph_leaves([z])} == {id(p) for p in hard.trunk.parameters()}


def test_the_function_form_and_its_errors():
    model = _model("hard")
    x = torch.randn(8, 6)
    z = model.trunk(x)
    out = model.forward_heads(z)
    backward([out["score"].pow(2).mean(), out["pos"].mean()], features=z, method="mgda")
    assert all(p.grad is not None for p in model.parameters() if not any(p is q for q in model.heads["kind"].parameters()))
    with pytest.raises(TaskshareError, match="keeps state between steps"):
        backward([out["score"].mean(), out["pos"].mean()], method="uncertainty")
    with pytest.raises(TaskshareError, match="representation level needs the shared features"):
        Balancing("upgrad", representation=True).backward([out["score"].mean(), out["pos"].mean()])
    with pytest.raises(TaskshareError, match="not a scalar"):
        Balancing("upgrad").backward([out["score"], out["pos"].mean()], features=z)
    with pytest.raises(TaskshareError, match="give model="):
        Balancing("gradnorm", num_tasks=2)


@pytest.mark.parametrize("reduce", [lambda t: t, None])
def test_the_removed_reduce_argument_names_its_replacement(reduce):
    """reduce= took the caller's mean across processes and applied it to losses only; across_processes=True
    also makes the per-task gradients global, so the one is not read as the other: refused by name."""
    with pytest.raises(TaskshareError, match=r"reduce= was removed.*across_processes=True"):
        Balancing("upgrad", reduce=reduce)
    assert Balancing("upgrad", across_processes=True).across_processes   # the replacement builds
    with pytest.raises(TypeError):    # only that name is caught: any other unknown argument stays an error
        Balancing("upgrad", reduction=None)


def test_state_dict_round_trip_continues_identically():
    a = Balancing("dwa", num_tasks=3)
    for k in range(4):
        a.backward([torch.tensor(1.0 + k, requires_grad=True) * s for s in (1.0, 2.0, 3.0)])
        if k % 2:
            a.end_epoch()
    b = Balancing("dwa", num_tasks=3)
    b.load_state_dict(a.state_dict())
    assert b.step == a.step and len(b.history) == 2
    la = a.method.task_loss(torch.tensor([1.0, 1.0, 1.0]), a.step, a.history)
    lb = b.method.task_loss(torch.tensor([1.0, 1.0, 1.0]), b.step, b.history)
    assert torch.equal(la, lb)
