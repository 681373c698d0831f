"""compare_sharing applies its balancer to every sharing mode, not only hard sharing, and each row names it."""
import numpy as np
import pytest
import torch
from torch import nn

from taskshare import MultiTaskDataset, Task, TrainConfig
from taskshare.train import compare_sharing as multitask_module
from taskshare.train.compare_sharing import compare_sharing

TASKS = [Task("a", "regression"), Task("b", num_classes=3)]


def trunk():
    return nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Sequential(nn.Linear(8, 6), nn.ReLU()))


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return MultiTaskDataset(x, {"a": (x[:, 0] * 3 + x[:, 1]).astype(np.float32),
                                "b": np.digitize(x[:, 2] - x[:, 3], [-0.5, 0.5]).astype(np.int64)})


def trained_parameters(monkeypatch, modes, **kwargs):
    """Each mode's trained parameters (recorded when compare_sharing evaluates the model) and the rows."""
    seen = {}
    evaluate = multitask_module.evaluate_multitask

    def recording(model, tasks, test, batch_size):
        seen[len(seen)] = [p.detach().clone() for p in model.parameters()]
        return evaluate(model, tasks, test, batch_size)

    monkeypatch.setattr(multitask_module, "evaluate_multitask", recording)
    cfg = TrainConfig(epochs=2, batch_size=32, min_steps=0, lr=1e-2, progress=False, device="cpu", seed=0)
    rows = compare_sharing(trunk, TASKS, data(96, 0), data(32, 1), data(32, 2), modes=modes, config=cfg, **kwargs)
    return dict(zip(modes, seen.values())), rows


@pytest.mark.parametrize("mode, method", [("soft", {"name": "fixed", "values": [4.0, 0.25]}),
                                          ("cross_stitch", "upgrad"), ("mmoe", "mgda"), ("ple", "imtl_g"),
                                          ("mtan", "upgrad")])
def test_a_non_equal_balancer_changes_every_modes_training_and_the_row_names_it(monkeypatch, mode, method):
    equal, equal_rows = trained_parameters(monkeypatch, [mode])
    balanced, rows = trained_parameters(monkeypatch, [mode], balancer=method)
    assert equal_rows[0].balancer is None
    assert rows[0].balancer == (method if isinstance(method, str) else method["name"])
    assert rows[0].to_dict()["balancer"] == rows[0].balancer
    moved = [not torch.allclose(a, b, atol=1e-6) for a, b in zip(equal[mode], balanced[mode])]
    assert any(moved), f"{mode}: {method} trained exactly as equal weighting"


def test_representation_level_where_there_are_shared_features_and_parameter_level_elsewhere(monkeypatch):
    _, rows = trained_parameters(monkeypatch, ["single", "hard", "mmoe"], balancer="upgrad", representation=True)
    assert [r.balancer for r in rows] == [None, "upgrad, representation level", "upgrad"]


def test_a_method_instance_is_copied_per_mode(monkeypatch):
    from taskshare.balancing import Uncertainty
    method = Uncertainty(num_tasks=2)
    before = [p.detach().clone() for p in method.parameters()]
    _, rows = trained_parameters(monkeypatch, ["hard", "soft"], balancer=method)
    assert [r.balancer for r in rows] == ["uncertainty", "uncertainty"]
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters()))   # the caller's own is untouched


def per_task(n, seed):
    """One dataset per task: each task its own inputs."""
    d = data(2 * n, seed)
    return {"a": (d.x[:n], d.labels["a"][:n]), "b": (d.x[n:], d.labels["b"][n:])}


def untrained(monkeypatch):
    """fit_multitask replaced by a recorder that trains nothing: the calls compare_sharing made."""
    calls = []
    monkeypatch.setattr(multitask_module, "fit_multitask", lambda model, tasks, *a, **k: calls.append([t.name for t in tasks]))
    return calls


def test_representation_level_on_one_dataset_per_task_is_refused_before_anything_trains(monkeypatch):
    """The refusal came from hard sharing's fit_multitask, after the single-task baselines had trained."""
    from taskshare import HardSharing
    from taskshare.errors import TaskshareError
    from taskshare.train.multitask import fit_multitask
    cfg = TrainConfig(epochs=1, batch_size=32, min_steps=0, progress=False, device="cpu")
    with pytest.raises(TaskshareError) as direct:                    # the message fit_multitask gives
        fit_multitask(HardSharing(trunk(), TASKS, in_features=6), TASKS, per_task(32, 0), None, cfg,
                      balancer="upgrad", representation=True)
    calls = untrained(monkeypatch)
    with pytest.raises(TaskshareError) as early:
        compare_sharing(trunk, TASKS, per_task(32, 0), per_task(8, 1), per_task(8, 2),
                        modes=["single", "soft", "hard"], config=cfg, balancer="upgrad", representation=True)
    assert calls == []
    assert str(early.value) == str(direct.value) and "representation=True on one dataset per task" in str(early.value)
    with pytest.raises(TaskshareError, match="sampler='joint'"):  # the other refusal of one dataset per task
        compare_sharing(trunk, TASKS, per_task(32, 0), per_task(8, 1), per_task(8, 2), modes=["single", "hard"],
                        config=cfg, balancer="upgrad", sampler="round_robin")
    assert calls == []


def test_representation_level_on_one_dataset_per_task_without_shared_features_still_runs(monkeypatch):
    """Soft sharing has no shared features: it balances at the parameter level, as it did, and the caller's
    random stream is where it was."""
    calls = untrained(monkeypatch)
    cfg = TrainConfig(epochs=1, batch_size=32, min_steps=0, progress=False, device="cpu")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    rows = compare_sharing(trunk, TASKS, per_task(32, 0), per_task(8, 1), per_task(8, 2), modes=["single", "soft"],
                           config=cfg, balancer="upgrad", representation=True)
    assert calls == [["a"], ["b"], ["a", "b"]] and [r.balancer for r in rows] == [None, "upgrad"]
    assert torch.equal(torch.rand(3), expected)
