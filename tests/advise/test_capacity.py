"""Capacity check on a tiny problem, and where sharing stops hurting."""
import pytest
import torch
from torch import nn

from taskshare import MultiTaskDataset, Task, TrainConfig
from taskshare.advise import capacity_check


def _data(seed=0, n=240):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    labels = {"a": x[:, 0] - x[:, 1], "b": x[:, 2] + x[:, 3], "c": x[:, 4] * 2}
    cut = int(n * 0.7), int(n * 0.85)
    part = lambda a, b: MultiTaskDataset(x[a:b], {k: v[a:b] for k, v in labels.items()})  # noqa: E731
    return part(0, cut[0]), part(cut[0], cut[1]), part(cut[1], n)


@pytest.mark.slow
def test_capacity_check_reports_every_width_and_a_verdict():
    tasks = [Task(n, "regression") for n in "abc"]
    train, val, test = _data()
    report = capacity_check(lambda w: nn.Sequential(nn.Linear(6, w)), [1, 8], tasks, train, val, test,
                            TrainConfig(epochs=40, lr=1e-2, min_steps=0, progress=False, device="cpu"))
    assert [r.width for r in report.rows] == [1, 8]
    narrow, wide = report.rows
    assert narrow.delta_m < wide.delta_m             # three independent targets cannot share one unit
    assert narrow.params_hard < narrow.params_single
    # a linear trunk 8 wide holds all three linear targets: sharing it costs nothing there
    assert wide.delta_m >= -report.tolerance and narrow.delta_m < -report.tolerance
    assert report.stops_hurting_at == 8 and "stops hurting at width 8" in report.summary()
    assert f"width 1: delta_m {narrow.delta_m:+.2f}%" in report.summary()
