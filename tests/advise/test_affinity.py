"""Task affinity by lookahead: signs on constructed helpful and harmful pairs, and the grouping."""
import torch
from torch import nn

from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig
from taskshare.advise import Affinity, affinity_svg, propose_groups, task_affinity


def _pair(second):
    """A 1-wide linear trunk: task a needs direction u; task b needs `second`."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 6, generator=g)
    u = torch.tensor([1.0, 0, 0, 0, 0, 0])
    return MultiTaskDataset(x, {"a": x @ u, "b": x @ second})


def _affinity(data):
    torch.manual_seed(0)
    tasks = [Task("a", "regression"), Task("b", "regression")]
    model = HardSharing(nn.Linear(6, 1), tasks, in_features=1)
    return task_affinity(model, tasks, data, TrainConfig(epochs=1, batch_size=64, lr=1e-2, device="cpu"))


def test_a_related_task_helps_and_an_orthogonal_one_hurts():
    helpful = _affinity(_pair(torch.tensor([2.0, 0, 0, 0, 0, 0])))
    harmful = _affinity(_pair(torch.tensor([0, 1.0, 0, 0, 0, 0])))
    assert helpful.matrix[0][1] > 0 and helpful.matrix[1][0] > 0
    assert harmful.matrix[0][1] < 0 and harmful.matrix[1][0] < 0
    assert helpful.steps == 8


def test_groups_follow_the_affinities():
    names = ["a1", "a2", "a3", "b1", "b2"]
    M = torch.full((5, 5), -0.05)
    M[:3, :3] = 0.2
    M[3:, 3:] = 0.1
    groups = propose_groups(Affinity(names, M.tolist(), 1))
    assert groups == [["a1", "a2", "a3"], ["b1", "b2"]]
    assert propose_groups(Affinity(names, M.tolist(), 1), max_groups=1) == [names]
    svg = affinity_svg(Affinity(names, M.tolist(), 1))
    assert svg.startswith("<svg") and svg.count("<rect") == 25 and "a1 -> b2: -0.0500" in svg
