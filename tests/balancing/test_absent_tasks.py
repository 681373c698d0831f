"""A task with no known label in a batch is absent: told so (`present`), every method acts as it
would on the present tasks alone, the absent task adds exactly zero, and neither the other tasks'
weights nor the absent task's own state move."""
import numpy as np
import pytest
import torch
from torch import nn

from taskshare import HardSharing, Task, TrainConfig, evaluate_multitask, fit_multitask
from taskshare.balancing import BALANCERS, build_balancer
from taskshare.train import Balancing

LOSS_METHODS = [n for n in BALANCERS.names()
                if BALANCERS.get(n).needs == "losses" and not BALANCERS.get(n).needs_layer_gradients]
GRADIENT_METHODS = [n for n in BALANCERS.names() if BALANCERS.get(n).needs != "losses"]
PRESENT = torch.tensor([True, False, True])
KEEP = [0, 2]


def _make(name, values=(1.0, 2.0, 0.5)):
    spec = {"name": "fixed", "values": list(values)} if name == "fixed" else name
    return build_balancer(spec, len(values))


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_loss_method_with_a_task_absent_acts_on_the_present_tasks_alone(name):
    losses = torch.tensor([0.8, 0.0, 1.7], requires_grad=True)        # task 1: no label, loss exactly 0
    history = [torch.tensor([1.0, 2.0, 1.5]), torch.tensor([0.9, 1.0, 1.2])]
    full = _make(name)
    torch.manual_seed(0)                                               # RLW draws its weights
    full.task_loss(losses, 3, history, present=PRESENT).backward()
    alone_losses = losses.detach()[KEEP].requires_grad_(True)
    alone = _make(name, [1.0, 0.5])
    torch.manual_seed(0)
    alone.task_loss(alone_losses, 3, [h[KEEP] for h in history]).backward()
    assert losses.grad[1] == 0
    assert torch.allclose(losses.grad[KEEP], alone_losses.grad, rtol=1e-6, atol=1e-12), name
    for p in full.parameters():                                        # uncertainty, IMTL-L: no gradient
        assert p.grad is None or p.grad[1] == 0, name


@pytest.mark.parametrize("name", ["famo", "gls"])
def test_famo_and_gls_keep_the_present_tasks_gradient(name):
    """Filled with a zero, task b made d objective / d L_a vanish (1e-8, 6e-7)."""
    losses = torch.tensor([0.8, 0.0], requires_grad=True)
    build_balancer(name, 2).task_loss(losses, present=torch.tensor([True, False])).backward()
    assert losses.grad.tolist() == pytest.approx([1.0, 0.0])         # one task alone: its plain gradient


def test_famo_state_of_an_absent_task_does_not_move():
    full, alone = build_balancer("famo", 3), build_balancer("famo", 2)
    for step in range(4):
        before = torch.tensor([1.0 + step, 0.0, 2.0])
        after = before * torch.tensor([0.5, 1.0, 0.9])
        full.task_loss(before, present=PRESENT)
        full.observe(after, PRESENT)
        alone.task_loss(before[KEEP])
        alone.observe(after[KEEP])
    assert full.logits[1] == 0 and full.adam_m[1] == 0 and full.adam_v[1] == 0
    assert full.adam_steps.tolist() == [4, 0, 4]                       # its step count too
    assert torch.equal(full.logits[KEEP], alone.logits)
    assert full.logits[0] != 0                                         # the present tasks did learn


def test_famo_through_balancing_after_step_with_a_task_absent():
    bal = Balancing("famo", 3)
    bal.objective(torch.tensor([2.0, 0.0, 1.0]), PRESENT)
    bal.after_step(torch.tensor([1.0, 5.0, 1.0]), PRESENT)             # task 1's 5.0 is not read
    assert bal.method.logits[1] == 0 and bal.method.logits[0] != 0


def test_dwa_history_leaves_an_absent_task_out_of_its_epoch_mean():
    bal = Balancing("dwa", 2)
    bal.objective(torch.tensor([1.0, 0.0]), torch.tensor([True, False]))
    bal.objective(torch.tensor([3.0, 2.0]))
    bal.end_epoch()
    assert bal.history[-1].tolist() == [2.0, 2.0]                       # not [2.0, 1.0]
    bal.objective(torch.tensor([1.0, 0.0]), torch.tensor([True, False]))
    bal.end_epoch()                                                     # task 1 never labelled: last mean kept
    assert bal.history[-1].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("mask_given", [True, False])
def test_gradnorm_initial_loss_is_the_first_observed_one(mask_given):
    """Two identical tasks, task b unlabelled in the first batch: L_b(0) was kept as 1e-12,
    which drove the weights to [-0.025, 2.025]; they must stay [1, 1]."""
    gn = build_balancer("gradnorm", 2)
    opt = torch.optim.Adam(gn.parameters(), lr=0.025)
    lg = torch.ones(2, 5)
    for step in range(300):
        losses = torch.tensor([1.0, 0.0 if step == 0 else 1.0])
        present = torch.tensor([True, step > 0]) if mask_given else None
        opt.zero_grad()
        gn.task_loss(losses, layer_grads=lg, present=present).backward()
        opt.step()
    assert gn.initial_losses.tolist() == [1.0, 1.0]
    assert gn.loss_weights.detach().tolist() == pytest.approx([1.0, 1.0], abs=1e-4)


def test_gradnorm_absent_task_weight_gets_no_gradient():
    gn = build_balancer("gradnorm", 3)
    gn.task_loss(torch.tensor([1.0, 2.0, 3.0]), layer_grads=torch.ones(3, 4))   # L(0) recorded
    lg = torch.stack([torch.ones(4), torch.zeros(4), 3 * torch.ones(4)])
    gn.task_loss(torch.tensor([0.5, 0.0, 2.0]), layer_grads=lg, present=PRESENT).backward()
    assert gn.loss_weights.grad[1] == 0 and gn.loss_weights.grad[0] != 0


def _gradnorm_after_steps(present, steps=5):
    """GradNorm over 3 tasks (L(0) recorded with all present), then `steps` SGD steps on its weights with
    `present`; each step's weights as they were before and after its renormalisation."""
    gn = build_balancer("gradnorm", 3)
    gn.task_loss(torch.tensor([1.0, 2.0, 3.0]), layer_grads=torch.ones(3, 4))
    opt = torch.optim.SGD(gn.parameters(), lr=0.02)
    lg = torch.stack([torch.ones(4), 2 * torch.ones(4), 5 * torch.ones(4)])
    seen = []
    for _ in range(steps):
        before = gn.loss_weights.detach().clone()
        opt.zero_grad()
        gn.task_loss(torch.tensor([0.5, 1.5, 2.0]), layer_grads=lg, present=present).backward()
        seen.append((before, gn.loss_weights.detach().clone()))
        opt.step()
    return seen


def test_gradnorm_renormalisation_leaves_an_absent_tasks_weight_and_keeps_the_total():
    """The sum to T rescaled task 1's weight too while it was absent."""
    seen = _gradnorm_after_steps(PRESENT)
    assert any(abs(float(before.sum()) - 3.0) > 1e-3 for before, _ in seen)   # the updates did move the total
    for before, after in seen:
        assert after[1] == before[1]                                          # exactly as it was
        assert float(after.sum()) == pytest.approx(3.0, abs=1e-6)
        assert torch.allclose(after[KEEP] / after[KEEP].sum(), before[KEEP] / before[KEEP].sum())


def test_gradnorm_renormalisation_with_every_task_present_rescales_them_all():
    for present in (None, torch.tensor([True, True, True])):
        for before, after in _gradnorm_after_steps(present):
            assert torch.equal(after, before.clamp(min=1e-6) * (3 / before.clamp(min=1e-6).sum()))


def test_gradnorm_absent_weights_past_the_total_rescale_every_weight():
    gn = build_balancer("gradnorm", 3)
    with torch.no_grad():
        gn.loss_weights.copy_(torch.tensor([0.5, 3.2, 0.3]))                  # task 1 grew past T while present
    gn.task_loss(torch.tensor([0.5, 0.0, 2.0]), layer_grads=torch.ones(3, 4), present=PRESENT)
    assert gn.loss_weights.detach().tolist() == pytest.approx([0.375, 2.4, 0.225])
    assert (gn.loss_weights > 0).all()


def _gradnorm_adamw_calls(gn, presents, opt=None):
    """One task_loss call and one AdamW step (as the trainer optimises the balancer's weights) per
    entry of `presents`; the weights each call used, after its renormalisation."""
    opt = opt or torch.optim.AdamW(gn.parameters(), lr=1e-3, weight_decay=0.0)
    lg = torch.stack([torch.ones(4), 2 * torch.ones(4), 5 * torch.ones(4)])
    used = []
    for present in presents:
        losses = torch.tensor([0.5, 1.5, 2.0]) if present is None else torch.tensor([0.5, 0.0, 2.0])
        opt.zero_grad()
        gn.task_loss(losses, layer_grads=lg, present=present).backward()
        used.append(gn.loss_weights.detach().clone())
        opt.step()
    return used


def test_gradnorm_absent_weight_stays_under_adamw_momentum():
    """AdamW's momentum moved an absent task's weight on a zero gradient (1.0030 -> 1.0058 over four
    absent steps), and the renormalisation kept that drift."""
    gn = build_balancer("gradnorm", 3)
    used = _gradnorm_adamw_calls(gn, [None] * 4 + [PRESENT] * 4 + [None])
    assert used[3][1] != used[0][1]                                     # present: it does move
    for w in used[4:8]:
        assert w[1] == used[4][1]                                       # absent: exactly as it was
        assert float(w.sum()) == pytest.approx(3.0, abs=1e-6)
    assert used[8][1] != used[4][1]                                     # present again: it moves on


def test_gradnorm_accumulated_batches_keep_a_weight_moved_while_its_task_was_present():
    """Several batches per optimizer step: a task labelled in one of them had a real gradient, so the
    step's move of its weight stands although the next batch lacks it."""
    gn = build_balancer("gradnorm", 3)
    opt = torch.optim.AdamW(gn.parameters(), lr=1e-3, weight_decay=0.0)
    lg = torch.stack([torch.ones(4), 2 * torch.ones(4), 5 * torch.ones(4)])
    gn.task_loss(torch.tensor([0.5, 1.5, 2.0]), layer_grads=lg).backward()              # task 1 present
    gn.task_loss(torch.tensor([0.5, 0.0, 2.0]), layer_grads=lg, present=PRESENT).backward()
    opt.step()
    moved = gn.loss_weights.detach().clone()
    gn.task_loss(torch.tensor([0.5, 0.0, 2.0]), layer_grads=lg, present=PRESENT)
    assert moved[1] != 1.0 and gn.loss_weights[1] == moved[1]


def test_gradnorm_held_weights_survive_a_checkpoint_and_old_checkpoints_load():
    gn = build_balancer("gradnorm", 3)
    opt = torch.optim.AdamW(gn.parameters(), lr=1e-3, weight_decay=0.0)
    used = _gradnorm_adamw_calls(gn, [None] * 3 + [PRESENT] * 2, opt)
    fresh = build_balancer("gradnorm", 3)
    fresh.load_state_dict(gn.state_dict())
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3, weight_decay=0.0)
    fresh_opt.load_state_dict(opt.state_dict())
    assert _gradnorm_adamw_calls(fresh, [PRESENT], fresh_opt)[0][1] == used[3][1]   # the drift undone
    old = {k: v for k, v in gn.state_dict().items() if not k.startswith("held_")}   # written before they existed
    before = build_balancer("gradnorm", 3)
    before.load_state_dict(old)
    assert torch.equal(before.held_weights, old["loss_weights"]) and bool(before.held_present.all())


def test_gradnorm_renormalisation_keeps_an_absent_weight_positive():
    from taskshare.balancing.gradnorm import _renormalise
    w = torch.tensor([1.5, 1.6, -0.1])
    _renormalise(w, torch.tensor([True, True, False]))
    assert w[2] == pytest.approx(1e-6) and float(w.sum()) == pytest.approx(3.0)
    assert w[0] / w[1] == pytest.approx(1.5 / 1.6)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_with_one_task_present_gives_its_gradient(name):
    g = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = build_balancer(name, 3).direction(g, torch.tensor([False, True, False]))
    assert torch.allclose(d, g[0])


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_with_a_task_absent_acts_on_the_present_tasks_alone(name):
    G = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    d = build_balancer(name, 3).direction(G, PRESENT)
    torch.manual_seed(0)
    assert torch.allclose(d, build_balancer(name, 2).direction(G), atol=1e-8), name


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_method_with_no_task_present_gives_a_zero_update(name, dtype):
    # a batch where no task has a known label: zero rows, and the update (and the weights) must be
    # zero, not a numpy or torch error from a reduction over nothing
    none = torch.tensor([False, False, False])
    method = build_balancer(name, 3)
    d = method.direction(torch.zeros(0, 6, dtype=dtype), none)
    assert d.shape == (6,) and d.dtype == dtype and not bool(d.any()), name
    if method.needs == "gramian":
        w = method.task_weights(torch.zeros(0, 0, dtype=dtype), none)
        assert w.shape == (0,) and w.dtype == dtype, name


def test_gradvac_targets_of_an_absent_task_do_not_move():
    gv = build_balancer({"name": "gradvac", "beta": 0.5}, 3)
    G = torch.tensor([[1.0, 0.0], [0.5, 1.0]], dtype=torch.float64)
    gv.direction(G, PRESENT)
    assert gv.targets[1].abs().sum() == 0 and gv.targets[:, 1].abs().sum() == 0
    assert gv.targets[0, 2] != 0


def test_balancing_backward_with_a_task_absent_writes_the_present_tasks_update():
    """MGDA on [g_a, 0] is the zero vector (the min-norm point of a hull holding 0): an absent task's
    zero gradient must not be a row, so the update is task a's gradient."""
    torch.manual_seed(0)
    trunk, head_a, head_b = nn.Linear(4, 3), nn.Linear(3, 1), nn.Linear(3, 1)
    x = torch.randn(8, 4)
    z = trunk(x)
    losses = [head_a(z).pow(2).mean(), head_b(z).sum() * 0]
    Balancing("mgda", 2).backward(losses, features=z, present=[True, False])
    got = trunk.weight.grad.clone()
    trunk.zero_grad()
    head_a(trunk(x)).pow(2).mean().backward()
    assert got.abs().sum() > 0
    assert torch.allclose(got, trunk.weight.grad, atol=1e-6)


def _two_datasets():
    r = np.random.default_rng(0)
    xa, xb = r.normal(size=(2, 400, 8)).astype(np.float32)
    train = {"a": (xa[:300], xa[:300, 0] + xa[:300, 1]), "b": (xb[:300], xb[:300, 0] - xb[:300, 2])}
    val = {"a": (xa[300:], xa[300:, 0] + xa[300:, 1]), "b": (xb[300:], xb[300:, 0] - xb[300:, 2])}
    return train, val


@pytest.mark.parametrize("balancer", ["famo", "gls"])
def test_one_dataset_per_task_learns_with_famo_and_gls(balancer):
    """Two regressions, one dataset each: val R2 was -0.009 / 0.084 with FAMO against 0.425 / 0.469 with none."""
    tasks = [Task("a", "regression"), Task("b", "regression")]
    train, val = _two_datasets()
    scores = {}
    for bal in (None, balancer):
        torch.manual_seed(0)
        model = HardSharing(nn.Sequential(nn.Linear(8, 32), nn.ReLU()), tasks, example=torch.zeros(2, 8))
        fit_multitask(model, tasks, train, val, TrainConfig(epochs=6, min_steps=0, patience=100, batch_size=32,
                                                            seed=0, progress=False), balancer=bal)
        e = evaluate_multitask(model, tasks, val)
        scores[bal] = [e["a"]["r2"], e["b"]["r2"]]
    assert min(scores[None]) > 0.3
    assert scores[balancer] == pytest.approx(scores[None], abs=0.05)


@pytest.mark.parametrize("name", BALANCERS.names())
def test_every_method_built_for_one_task_runs_on_it(name):
    method = build_balancer({"name": "fixed", "values": [1.0]} if name == "fixed" else name, 1)
    if method.needs_layer_gradients:
        out = method.task_loss(torch.tensor([1.0]), layer_grads=torch.ones(1, 3))
    elif method.needs == "losses":
        out = method.task_loss(torch.tensor([1.0]), 3, [torch.tensor([1.0]), torch.tensor([2.0])])
    else:
        out = method.direction(torch.ones(1, 4, dtype=torch.float64))
    assert torch.isfinite(out).all()
