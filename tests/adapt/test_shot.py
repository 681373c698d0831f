"""Source-free adaptation (SHOT): its contract (only a model and unlabelled target inputs; the head
frozen), and a gain over the source model on a shift it can fix."""
import inspect

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.adapt import fit_adaptation, fit_source_free
from taskshare.models.trunk_head import TrunkHead
from taskshare.train.loop import evaluate


def test_source_free_takes_no_source_data():
    params = list(inspect.signature(fit_source_free).parameters)
    assert params[:3] == ["model", "task", "target"]
    assert not any("source" in p or p in ("val", "train") for p in params), params
    with pytest.raises(TypeError):
        fit_source_free(None, Task("c", num_classes=2), torch.zeros(4, 2), source=(torch.zeros(4, 2), torch.zeros(4)))


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
    history = fit_source_free(model, task, target[0], TrainConfig(epochs=10, batch_size=64, min_steps=0, progress=False,
                                                                   device="cpu"), target_test=target)
    after = evaluate(model, task, target)["accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(head, model.head.parameters()))      # the source hypothesis kept
    assert all(p.requires_grad for p in model.head.parameters())                      # unfrozen afterwards
    assert history.best_epoch == len(history.epochs) - 1                              # no labels: the last epoch
    assert before < 0.9 and after > before + 0.05, (before, after)


def test_shot_needs_a_classifier():
    model = TrunkHead(nn.Sequential(nn.Linear(2, 4)), nn.Linear(4, 1))
    with pytest.raises(TaskshareError, match="SHOT.*regression"):
        fit_source_free(model, Task("r", "regression"), torch.zeros(8, 2))
