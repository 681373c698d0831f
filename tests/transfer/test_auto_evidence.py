"""auto decides from evidence: fold scores read as paired differences, scratch always a candidate, and
a candidate clearly below scratch never chosen, even where the size rule would pick it."""
import numpy as np
import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig, TrunkHead
from taskshare.data import few_shot
from taskshare.transfer import build_strategy, run_strategy
from taskshare.transfer.evidence import above_bar, contenders, decide, next_held_out

CFG = TrainConfig(epochs=20, batch_size=32, lr=1e-2, min_steps=60, patience=20, progress=False, device="cpu")


def test_the_next_held_out_examples_are_the_least_held_so_far_per_class():
    y = np.array([0, 0, 1, 1, 0, 0, 1, 1])          # train 0-3, validation 4-7: the same count per class
    held = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert next_held_out(y, {0: 2, 1: 2}, held, seed=0).tolist() == [0, 1, 2, 3]   # the swap
    assert held.tolist() == [1] * 8
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])     # a larger training split: a stratified part of it
    held = np.array([0] * 8 + [1, 1])
    out = next_held_out(y, {0: 1, 1: 1}, held, seed=0)
    assert len(out) == 2 and sorted(y[out].tolist()) == [0, 1] and out.max() < 8
    with pytest.raises(TaskshareError, match="rounds must be >= 1.*rounds=0"):
        build_strategy({"name": "auto", "rounds": 0})


def _correct(n: int, wrong: list[range]) -> list[float]:
    out = [1.0] * n
    for r in wrong:
        for i in r:
            out[i] = 0.0
    return out


def test_the_lead_needed_to_displace_scratch_rises_with_the_candidates():
    """Five transfer candidates on one validation split of 500; one leads scratch by 1.27 standard errors
    of the paired difference (24 examples gained, 16 lost), the others match it. The bar for a single
    candidate (one standard error) keeps that lead; with five, the largest of five noisy leads, the bar
    is 1.85 and it is not enough."""
    n = 500
    scratch = _correct(n, [range(0, 200)])
    lucky = _correct(n, [range(24, 200), range(300, 316)])
    scores = {"scratch": scratch, "lp_ft": lucky, **{f"other{i}": list(scratch) for i in range(4)}}
    d = decide(scores, prior="lp_ft")
    assert d.choice == "scratch" and not d.settled and "lp_ft +0.016" in d.note, d.note
    # the same lead from a single candidate clears the bar for one
    alone = decide({"scratch": scratch, "lp_ft": lucky}, prior="lp_ft")
    assert alone.choice == "lp_ft" and alone.settled
    assert above_bar(1) == pytest.approx(0.994, abs=0.01) and above_bar(5) == pytest.approx(1.852, abs=0.01)


def test_the_size_rule_decides_a_tie_only_where_the_evidence_cannot_resolve_it():
    """The Exam table at 5 labels per class: 20 held-out examples, the linear probe level with scratch.
    So few cannot resolve a lead of a few points, and the size rule's choice is kept; on 2,000 examples
    the same tie is no detectable difference, and scratch is kept."""
    few = {"scratch": _correct(20, [range(0, 6)]), "linear_probe": _correct(20, [range(3, 9)]),
           "lp_ft": _correct(20, [range(0, 7)])}
    d = decide(few, prior="linear_probe", max_se=0.02)
    assert d.choice == "linear_probe" and "cannot resolve" in d.note and not d.settled
    assert decide(few, prior="linear_probe").choice == "scratch"          # without max_se: the baseline
    many = {name: v * 100 for name, v in few.items()}
    assert decide(many, prior="linear_probe", max_se=0.02).choice == "scratch"
    # evidence that points against the prior, even within the noise, keeps scratch (a source with
    # shuffled labels: its probe 8 points below scratch on 50 examples, one standard error)
    against = dict(few, linear_probe=_correct(20, [range(0, 7)]))
    assert decide(against, prior="linear_probe", max_se=0.02).choice == "scratch"
    # a prior clearly below scratch stays refused, however little evidence there is
    worse = dict(few, linear_probe=_correct(20, [range(0, 16)]))
    assert decide(worse, prior="linear_probe", max_se=0.02).choice == "scratch"


def test_a_size_rule_that_names_scratch_itself_gets_scratch_and_a_note():
    """The prior may be the baseline (a size rule that trusts no transfer); with no lead above the bar
    the note then says no candidate leads it, and nothing looks up a lead of scratch over itself."""
    few = {"scratch": _correct(20, [range(0, 6)]), "linear_probe": _correct(20, [range(3, 9)])}
    d = decide(few, prior="scratch", max_se=0.02)
    assert d.choice == "scratch" and "no transfer candidate leads scratch" in d.note and not d.settled


def test_candidates_far_below_are_pruned_before_another_round():
    n = 100
    scores = {"scratch": _correct(n, [range(0, 40)]), "linear_probe": _correct(n, [range(0, 80)]),
              "lp_ft": _correct(n, [range(0, 38)]), "gradual_unfreeze": _correct(n, [range(5, 43)])}
    assert contenders(scores) == ["scratch", "lp_ft", "gradual_unfreeze"]


def test_a_candidate_clearly_below_scratch_is_refused_even_as_the_rules_choice():
    # the numbers: scratch 1.00/0.96/0.96, linear probe 0.60/0.84/0.88
    d = decide({"linear_probe": [0.60, 0.84, 0.88], "scratch": [1.00, 0.96, 0.96]}, prior="linear_probe")
    assert d.choice == "scratch" and d.refused == ["linear_probe"] and "refused" in d.note


def test_the_rule_breaks_ties_only():
    noisy = {"linear_probe": [0.80, 0.70, 0.90], "lp_ft": [0.82, 0.74, 0.88], "scratch": [0.50, 0.40, 0.45]}
    assert decide(noisy, prior="linear_probe").choice == "linear_probe"      # within the fold spread of the best
    assert decide(noisy, prior="lp_ft").choice == "lp_ft"
    clear = {"linear_probe": [0.70, 0.60, 0.80], "lp_ft": [0.80, 0.72, 0.91], "scratch": [0.50, 0.40, 0.45]}
    assert decide(clear, prior="linear_probe").choice == "lp_ft"            # lp_ft wins on every fold
    tied = {"linear_probe": [0.60, 0.40, 0.50], "scratch": [0.50, 0.50, 0.45]}
    assert decide(tied, prior="linear_probe").choice == "scratch"           # transfer has to earn its place
    lower = {"lp_ft": [0.3, 0.2, 0.25], "scratch": [0.5, 0.4, 0.45]}      # loss: lower is better
    assert decide(lower, prior="scratch", higher_is_better=False).choice == "lp_ft"


def _teacher_data(n_per_class: int, seed: int, dim: int = 16, classes: int = 4):
    """Labels from a fixed random ReLU network: learnable, but not from a handful of examples."""
    g = torch.Generator().manual_seed(123)
    w1, w2 = torch.randn(dim, 64, generator=g), torch.randn(64, classes, generator=g)
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.normal(size=(n_per_class * classes * 8, dim)), dtype=torch.float32)
    y = (torch.relu(x @ w1) @ w2).argmax(1)
    keep = rng.permutation(np.concatenate([np.flatnonzero(y.numpy() == c)[:n_per_class] for c in range(classes)]))
    return x[keep], y[keep]


def _net(dim: int = 16, classes: int = 4) -> TrunkHead:
    trunk = nn.Sequential(nn.Sequential(nn.Linear(dim, 64), nn.ReLU()), nn.Sequential(nn.Linear(64, 64), nn.ReLU()))
    return TrunkHead(trunk, nn.Linear(64, classes))


@pytest.mark.slow
def test_auto_refuses_a_dead_trunk_that_the_size_rule_would_probe():
    """A source whose every ReLU is dead (its features are constant): probing it is at chance and no
    gradient reaches the trunk, while scratch learns the task. 5 labels per class: the rule says probe."""
    x, y = _teacher_data(60, seed=0)
    torch.manual_seed(0)
    pre = _net()
    with torch.no_grad():
        pre.trunk[0][0].bias.fill_(-100.0)
    task = Task("t", "multiclass", num_classes=4)
    splits = few_shot((x[:40 * 4], y[:40 * 4]), 5, seed=0, test=(x, y))
    _, probe = run_strategy(pre, task, splits, "linear_probe", CFG)
    _, auto = run_strategy(pre, task, splits, "auto", CFG)
    _, scratch = run_strategy(pre, task, splits, "scratch", CFG)
    assert probe.test["accuracy"] < 0.4 and scratch.test["accuracy"] > probe.test["accuracy"] + 0.1
    assert auto.strategy == "auto -> scratch", auto.note
    assert "round(s) of held-out examples" in auto.note and "refused as clearly below scratch" in auto.note
    assert "the size rule alone would say linear_probe" in auto.note.lower()



@pytest.mark.slow
def test_auto_keeps_transfer_where_it_clearly_helps():
    """The source is the same task with plenty of labels; the target has 5 per class."""
    x, y = _teacher_data(400, seed=1)
    torch.manual_seed(0)
    pre = _net()
    from taskshare import fit
    fit(pre, Task("s", "multiclass", num_classes=4), (x[:1400], y[:1400]), (x[1400:], y[1400:]),
        TrainConfig(epochs=40, lr=3e-3, patience=10, progress=False, device="cpu"))
    xt, yt = _teacher_data(60, seed=2)
    task = Task("t", "multiclass", num_classes=4)
    splits = few_shot((xt[:160], yt[:160]), 5, seed=0, test=(xt, yt))
    _, auto = run_strategy(pre, task, splits, "auto", CFG)
    _, scratch = run_strategy(pre, task, splits, "scratch", CFG)
    assert not auto.strategy.endswith("scratch"), auto.note
    assert auto.test["accuracy"] > scratch.test["accuracy"] + 0.1
    assert "paired per example" in auto.note and "scores (mean ± std" in auto.note



def _scripted_auto(monkeypatch, val_per_class: int, first: dict[str, list[float]], second: dict[str, list[float]]):
    """auto on a real split, each candidate's training replaced by a script: per round, which held-out
    examples each candidate gets right (one not named: as scratch). Returns auto's result and the rounds each candidate trained."""
    from taskshare.transfer import auto_run, run as run_module
    from taskshare.transfer.run import TransferResult

    x, y = _teacher_data(2 * val_per_class, seed=3)
    task = Task("t", "multiclass", num_classes=4)
    splits = few_shot((x, y), val_per_class, seed=0)
    trained = []
    real_run = run_module.run_strategy

    def scripted(pretrained, task_, split, strategy, *args, **kwargs):
        if strategy == "auto" or getattr(strategy, "name", "") == "auto":
            return real_run(pretrained, task_, split, strategy, *args, **kwargs)
        round_ = 0 if split is splits else 1
        trained.append((strategy.label(), round_))
        return (strategy.label(), round_), TransferResult(strategy.label(), 0, None, {}, 0.0, 0.0, 1)

    monkeypatch.setattr(run_module, "run_strategy", scripted)
    monkeypatch.setattr(auto_run, "_scores", lambda model, data, device, config, *_:
                        (first if model[1] == 0 else second).get(model[0], first["scratch"])[:len(data)])
    _, result = real_run(_net(), task, splits, "auto", CFG)
    return result, trained


def test_a_lead_on_few_examples_must_survive_the_swapped_round(monkeypatch):
    """20 validation examples: gradual unfreezing gets 6 more right than scratch (0.30 ± 0.105, above
    the bar), the probe and LP-FT 2 fewer (refused). One split of 20 cannot resolve a lead to max_se, so
    the candidates train again with the roles swapped; there gradual unfreezing is 8 below scratch, and
    scratch is kept. Before, the first round's lead settled the choice alone."""
    n = 20
    scratch = _correct(n, [range(0, 6)])
    below = _correct(n, [range(0, 8)])
    first = {"linear_probe": below, "lp_ft": below, "gradual_unfreeze": [1.0] * n, "scratch": scratch}
    second = {"linear_probe": below, "lp_ft": below, "gradual_unfreeze": _correct(n, [range(10, 18)]),
              "scratch": [1.0] * n}
    result, trained = _scripted_auto(monkeypatch, 5, first, second)
    assert ("gradual_unfreeze", 1) in trained and ("scratch", 1) in trained
    assert result.strategy == "auto -> scratch", result.note
    assert "2 round(s)" in result.note and "gradual_unfreeze's lead over scratch rested on 20 examples" in result.note
    # the same lead confirmed by the swapped round is kept
    second["gradual_unfreeze"] = [1.0] * n
    second["scratch"] = scratch
    result, _ = _scripted_auto(monkeypatch, 5, first, second)
    assert result.strategy == "auto -> gradual_unfreeze", result.note


def test_a_lead_on_many_examples_takes_one_round(monkeypatch):
    """800 validation examples resolve a paired lead to 0.5 / sqrt(800) < max_se: a lead above the bar
    is trusted without the second round's cost."""
    n = 800
    scratch = _correct(n, [range(0, 200)])
    first = {"linear_probe": scratch, "lp_ft": scratch, "gradual_unfreeze": _correct(n, [range(0, 100)]),
             "scratch": scratch}
    result, trained = _scripted_auto(monkeypatch, 200, first, first)
    assert all(r == 0 for _, r in trained) and "1 round(s)" in result.note
    assert result.strategy == "auto -> gradual_unfreeze", result.note
