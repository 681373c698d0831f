import copy

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.data.multitask import MultiTaskDataset
from taskshare.models import CrossStitch, HardSharing, SoftSharing
from taskshare.train.multitask import fit_multitask


def trunk():
    return nn.Sequential(nn.Sequential(nn.Linear(6, 12), nn.ReLU()), nn.Sequential(nn.Linear(12, 12), nn.ReLU()))


TASKS = [Task("cls", "multiclass", num_classes=4), Task("flag", "binary"), Task("tags", "multilabel", num_classes=3),
         Task("value", "regression", num_outputs=2)]


@pytest.mark.parametrize("cls", [HardSharing, SoftSharing, CrossStitch])
def test_each_mode_gives_one_output_per_task_sized_by_the_task(cls):
    model = cls(trunk(), TASKS, example=torch.randn(2, 6))
    out = model(torch.randn(5, 6))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"cls": (5, 4), "flag": (5, 1), "tags": (5, 3), "value": (5, 2)}
    assert set(model(torch.randn(5, 6), tasks=["flag"])) == {"flag"}


def test_clashing_names_and_unknown_tasks_are_named():
    with pytest.raises(TaskshareError, match="task name 'a' is used twice"):
        HardSharing(trunk(), [Task("a", "binary"), Task("a", "regression")], in_features=12)
    model = HardSharing(trunk(), [Task("a", "binary")], in_features=12)
    with pytest.raises(TaskshareError, match="unknown task 'b'"):
        model(torch.randn(2, 6), tasks=["b"])
    with pytest.raises(TaskshareError, match="nn.Sequential trunk"):
        CrossStitch(HardSharing(trunk(), [Task("a", "binary")], in_features=12), [Task("a", "binary")], in_features=12)


def _two_task_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return MultiTaskDataset(x, {"a": (x[:, 0] > 0).long(), "b": x[:, 1:3].sum(1, keepdim=True)})


TWO = [Task("a", "multiclass", num_classes=2), Task("b", "regression")]


def test_zero_coupling_is_exactly_independent_models():
    data = _two_task_data()
    torch.manual_seed(0)
    soft = SoftSharing(trunk(), TWO, in_features=12, coupling=0.0)
    singles = {t.name: HardSharing(copy.deepcopy(soft.towers[t.name]), [t], in_features=12) for t in TWO}
    for t in TWO:
        singles[t.name].heads[t.name].load_state_dict(soft.heads[t.name].state_dict())
    cfg = TrainConfig(epochs=3, batch_size=16, clip_grad=None, progress=False, device="cpu", min_steps=0)
    fit_multitask(soft, TWO, data, None, cfg)
    for t in TWO:
        fit_multitask(singles[t.name], [t], MultiTaskDataset(data.x, {t.name: data.labels[t.name]}), None, cfg)
        for p, q in zip(soft.towers[t.name].parameters(), singles[t.name].trunk.parameters()):
            assert torch.allclose(p, q, atol=1e-6)


@pytest.mark.slow
def test_large_coupling_keeps_towers_together_approaching_hard_sharing():
    data = _two_task_data()
    spreads = []
    for coupling in (0.0, 1.0, 100.0):
        torch.manual_seed(0)
        soft = SoftSharing(trunk(), TWO, in_features=12, coupling=coupling)
        fit_multitask(soft, TWO, data, None, TrainConfig(epochs=5, batch_size=16, lr=1e-2, progress=False, device="cpu"))
        spreads.append(soft.spread())
    assert spreads[0] > spreads[1] > spreads[2]
    assert spreads[2] < 0.02 * spreads[0]


def test_soft_penalty_by_hand_and_pairwise_identity():
    soft = SoftSharing(nn.Linear(2, 2, bias=False), TWO, in_features=2, coupling=0.5, distance="mean")
    with torch.no_grad():
        soft.towers["a"].weight.fill_(1.0)
        soft.towers["b"].weight.fill_(3.0)
    # mean 2; each of 4 entries is 1 away in each tower: 8 * 1^2 = 8; times 0.5
    assert soft.penalty().item() == pytest.approx(4.0)
    soft.distance = "pairwise"  # ||a - b||^2 = 4 entries * 4 = 16; times 0.5
    assert soft.penalty().item() == pytest.approx(8.0)


def test_cross_stitch_identity_units_equal_separate_towers_and_units_learn():
    torch.manual_seed(0)
    model = CrossStitch(trunk(), TWO, in_features=12, alpha_self=1.0)
    x = torch.randn(4, 6)
    out = model(x)
    for t in TWO:
        assert torch.allclose(out[t.name], model.heads[t.name](model.towers[t.name](x)), atol=1e-6)
    mixed = CrossStitch(trunk(), TWO, in_features=12, alpha_self=0.9)
    assert torch.allclose(mixed.stitches[0].sum(1), torch.ones(2))
    sum(v.sum() for v in mixed(x).values()).backward()
    assert mixed.stitches[0].grad is not None and mixed.stitches[0].grad.abs().sum() > 0
