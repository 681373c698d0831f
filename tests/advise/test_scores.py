"""Transferability scores on hand-made features with a known answer, and advise end to end."""
import math

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig, fit
from taskshare.advise import advise, h_score, leep, logme, nce


def _blobs(n=300, d=8, classes=3, spread=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, d, generator=g) * spread
    return centers[y] + torch.randn(n, d, generator=g), y


def test_logme_and_h_score_prefer_separable_labels_to_shuffled_ones():
    x, y = _blobs()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    assert logme(x, y) > logme(x, shuffled)
    assert h_score(x, y) > h_score(x, shuffled)
    weak_x, _ = _blobs(spread=0.3)
    assert logme(x, y) > logme(weak_x, y)


def test_leep_and_nce_by_hand():
    y = torch.tensor([0, 0, 1, 1])
    perfect = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])   # source class 1 = target 0
    assert leep(perfect, y) == pytest.approx(0.0, abs=1e-12)
    assert nce(perfect.argmax(1), y) == pytest.approx(0.0, abs=1e-12)
    useless = torch.full((4, 2), 0.5)
    assert leep(useless, y) == pytest.approx(math.log(0.5))
    assert nce(torch.zeros(4, dtype=torch.long), y) == pytest.approx(math.log(0.5))
    with pytest.raises(TaskshareError, match="apply softmax"):
        leep(torch.randn(4, 2), y)


def _xor(n, seed):
    """4 classes from an XOR of two coordinates and the sign of a third: a random trunk's features
    separate them poorly, a trained one's well."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long() * 2 + (x[:, 2] > 0).long()


def _source_model(epochs, seed=0):
    torch.manual_seed(seed)
    x, y = _xor(2000, 1)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    if epochs:
        fit(model, Task("a", num_classes=4), (x, y), None, TrainConfig(epochs=epochs, min_steps=0, progress=False, device="cpu"))
    return model


@pytest.mark.slow
def test_advise_ranks_a_trained_source_above_an_untrained_one_and_recommends():
    x, y = _xor(300, 2)
    trained, untrained = _source_model(40), _source_model(0)
    result = advise((x, y), Task("b", num_classes=4), {"trained": trained, "untrained": untrained})
    assert [c.name for c in result.candidates] == ["trained", "untrained"]
    assert result.candidates[0].logme > result.random_logme
    assert result.best == "trained" and result.strategy in ("linear_probe", "last_k", "lp_ft", "finetune")
    assert result.facts["labels_per_class"] >= 40 and "ranks first" in result.reason
    assert result.candidates[0].leep is not None and result.candidates[0].layers


def test_advise_flags_inputs_that_do_not_fit_and_bad_tasks():
    x, y = _blobs(n=50, d=10, classes=4)
    wrong = nn.Sequential(nn.Linear(7, 4), nn.Linear(4, 4))
    result = advise((x, y), Task("b", num_classes=4), {"ok": _source_model(0), "wrong": wrong})
    assert result.facts["inputs_fit"] == {"ok": True, "wrong": False}
    with pytest.raises(TaskshareError, match="no candidate accepts the target inputs"):
        advise((x, y), Task("b", num_classes=4), {"wrong": wrong})
    with pytest.raises(TaskshareError, match="advise scores classification targets"):
        advise((x, y.float()), Task("r", "regression"), {"ok": _source_model(0)})
