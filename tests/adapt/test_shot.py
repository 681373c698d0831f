"""Source-free adaptation (SHOT): its contract (only a model and unlabelled target inputs; the head
frozen), and a gain over the source model on a shift it can fix."""
import copy
import inspect
import logging

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.adapt import fit_adaptation, fit_source_free
from taskshare.adapt.shot import check_source_model, source_accuracy_floor
from taskshare.models.trunk_head import TrunkHead
from taskshare.train.loop import evaluate


def test_source_free_takes_no_source_data():
    params = inspect.signature(fit_source_free).parameters
    assert list(params)[:3] == ["model", "task", "target"]
    # the only source-side inputs are numbers: the source model's validation accuracy and its floor
    assert [p for p in params if "source" in p or p in ("val", "train")] == ["source_accuracy", "min_source_accuracy"]
    with pytest.raises(TypeError):
        fit_source_free(None, Task("c", num_classes=2), torch.zeros(4, 2), source=(torch.zeros(4, 2), torch.zeros(4)))
    model = TrunkHead(nn.Sequential(nn.Linear(2, 4)), nn.Linear(4, 3))
    source = (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    for data in (source, source[0], torch.tensor(0.9), True, 90.0):      # data, or not an accuracy in [0, 1]
        with pytest.raises(TaskshareError, match="source_accuracy = .*expected the source model's accuracy"):
            fit_source_free(model, Task("c", num_classes=3), torch.zeros(8, 2), source_accuracy=data)


def test_the_floor_is_a_majority_and_above_chance():
    assert source_accuracy_floor(10) == 0.5
    assert source_accuracy_floor(2) == 0.75                 # a binary majority is chance: 1.5x chance instead
    assert source_accuracy_floor(10, 0.7) == 0.7
    assert source_accuracy_floor(2, 0.0) == 0.0             # 0 turns the check off
    assert check_source_model(None, 10) is None             # nothing to check by
    assert check_source_model(0.5, 10) is None
    assert "0.490" in check_source_model(0.49, 10) and "kept unadapted" in check_source_model(0.49, 10)
    assert check_source_model(0.49, 10, min_source_accuracy=0.0) is None
    with pytest.raises(TaskshareError, match="min_source_accuracy = 2"):
        fit_source_free(TrunkHead(nn.Linear(2, 4), nn.Linear(4, 3)), Task("c", num_classes=3), torch.zeros(8, 2),
                        min_source_accuracy=2)


def test_an_explicit_line_below_the_default_is_honoured(caplog):
    """min_source_accuracy=0.4 on two classes is used as given (the default would be 0.75, 1.5x chance):
    a source model 0.45 right on its own validation is adapted, not kept; without it, it is kept."""
    assert source_accuracy_floor(2, 0.4) == 0.4 and source_accuracy_floor(2, None) == 0.75
    assert check_source_model(0.45, 2, min_source_accuracy=0.4) is None
    assert "below 0.750" in check_source_model(0.45, 2)
    task, config = Task("c", num_classes=2), TrainConfig(epochs=2, batch_size=16, min_steps=0, progress=False,
                                                         device="cpu")
    target = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = TrunkHead(nn.Sequential(nn.Linear(2, 8), nn.ReLU()), nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.trunk.parameters()]
    caplog.clear()                   # the default's refusal above was logged
    with caplog.at_level(logging.WARNING, logger="taskshare"):
        honoured = fit_source_free(model, task, target, config, source_accuracy=0.45, min_source_accuracy=0.4)
    assert not hasattr(honoured, "warning") and len(honoured.epochs) == 2 and not caplog.records
    assert any(not torch.equal(a, b) for a, b in zip(before, model.trunk.parameters()))     # adapted
    kept = fit_source_free(model, task, target, config, source_accuracy=0.45)
    assert "below 0.750" in kept.warning and kept.epochs[0]["kept_source_model"]


def _weak(n, seed, shift=0.0):
    """Five classes with skewed priors (0.45 .. 0.05) along a line, so close that the best classifier
    is right on under half the points, mostly by predicting the common classes; SHOT's diversity term
    (every class predicted equally often) and its self-training move the boundaries away from that."""
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(torch.tensor([0.45, 0.25, 0.15, 0.10, 0.05]), n, replacement=True, generator=g)
    return torch.stack([y.float() * 0.5, torch.zeros(n)], 1) + torch.randn(n, 2, generator=g) + shift, y


@pytest.mark.slow
def test_shot_keeps_a_weak_source_model_that_it_would_make_worse(caplog):
    task, config = Task("c", num_classes=5), TrainConfig(epochs=10, batch_size=64, min_steps=0, progress=False,
                                                         device="cpu", seed=1)
    torch.manual_seed(1)
    model = TrunkHead(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU()), nn.Linear(16, 5))
    source, val, target = _weak(600, 10), _weak(300, 11), _weak(600, 12, 0.3)
    fit_adaptation(model, task, source, source[0], val, config)
    accuracy = evaluate(model, task, val)["accuracy"]             # measured with the source model, kept as a number
    before = evaluate(model, task, target)["accuracy"]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert accuracy < 0.5

    unguarded = copy.deepcopy(model)
    fit_source_free(unguarded, task, target[0], config, min_source_accuracy=0.0)
    assert evaluate(unguarded, task, target)["accuracy"] < before - 0.05      # the construction: SHOT hurts here

    with caplog.at_level(logging.WARNING, logger="taskshare"):
        history = fit_source_free(model, task, target[0], config, target_test=target, source_accuracy=accuracy)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())   # the source model, unadapted
    assert evaluate(model, task, target)["accuracy"] == before
    assert "shot" in history.warning and f"{accuracy:.3f}" in history.warning and "kept unadapted" in history.warning
    assert any("kept unadapted" in r.getMessage() for r in caplog.records)
    assert history.best_epoch == 0 and history.epochs[0]["kept_source_model"]
    assert history.epochs[0]["val_target_accuracy"] == pytest.approx(before)


def _blobs(n, shift, seed):
    """Three classes on a ring; the target is the same ring moved by `shift` (a translation the head
    trained on the source half-misreads)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    angle = y.float() * 2.094
    x = torch.stack([angle.cos(), angle.sin()], 1) * 2 + 0.4 * torch.randn(n, 2, generator=g)
    return x + torch.tensor(shift), y


@pytest.mark.slow
def test_shot_freezes_the_head_adapts_the_trunk_and_gains_on_the_target():
    task = Task("c", num_classes=3)
    torch.manual_seed(0)
    model = TrunkHead(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU()), nn.Linear(16, 3))
    source = _blobs(600, [0.0, 0.0], 0)
    fit_adaptation(model, task, source, source[0], None, TrainConfig(epochs=20, batch_size=64, min_steps=0,
                                                                     progress=False, device="cpu"))
    target = _blobs(600, [2.2, 1.2], 1)
    before = evaluate(model, task, target)["accuracy"]
    head = [p.detach().clone() for p in model.head.parameters()]
    accuracy = evaluate(model, task, _blobs(300, [0.0, 0.0], 2))["accuracy"]       # a good source model: adapted
    history = fit_source_free(model, task, target[0], TrainConfig(epochs=10, batch_size=64, min_steps=0, progress=False,
                                                                   device="cpu"), target_test=target,
                              source_accuracy=accuracy)
    after = evaluate(model, task, target)["accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(head, model.head.parameters()))      # the source hypothesis kept
    assert all(p.requires_grad for p in model.head.parameters())                      # unfrozen afterwards
    assert history.best_epoch == len(history.epochs) - 1                              # no labels: the last epoch
    assert before < 0.9 and after > before + 0.05, (before, after)
    assert accuracy > 0.9 and not hasattr(history, "warning") and not hasattr(history, "note")


def test_shot_needs_a_classifier():
    model = TrunkHead(nn.Sequential(nn.Linear(2, 4)), nn.Linear(4, 1))
    with pytest.raises(TaskshareError, match="SHOT.*regression"):
        fit_source_free(model, Task("r", "regression"), torch.zeros(8, 2))


def test_shot_resumes_from_an_epoch_end_to_the_uninterrupted_result(tmp_path):
    """The pseudo-labels and their epoch count are part of the run checkpoint: a run cut after epoch 2
    and resumed ends where the uninterrupted one did."""
    from taskshare.train.resume import RunCheckpoints
    task, target = Task("c", num_classes=3), _blobs(192, [1.0, 0.5], 3)[0]

    def adapt(resume):
        torch.manual_seed(0)
        model = TrunkHead(nn.Sequential(nn.Linear(2, 16), nn.ReLU()), nn.Linear(16, 3))
        cfg = TrainConfig(epochs=4, batch_size=32, min_steps=0, progress=False, device="cpu", seed=0,
                          checkpoint_dir=str(tmp_path), keep_checkpoints=10, resume=resume)
        fit_source_free(model, task, target, cfg, source_accuracy=0.9)
        return model

    full = adapt(False)
    for path in RunCheckpoints(tmp_path).files()[2:]:
        path.unlink()                       # epochs 1 and 2 remain
    resumed = adapt(True)
    assert all(torch.equal(p, q) for p, q in zip(full.state_dict().values(), resumed.state_dict().values()))
