"""One budget per comparison: a strategy's stages share it, and every strategy and scratch get the same."""
import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig, TrunkHead
from taskshare.data import few_shot
from taskshare.evaluate import summarize
from taskshare.evaluate.report.transfer import steps_table, write_reports
from taskshare.transfer import compare

from ..conftest import blobs


def _pretrained():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
                          nn.Sequential(nn.Linear(16, 16), nn.ReLU()))
    return TrunkHead(trunk, nn.Linear(16, 3))


@pytest.mark.slow
def test_every_strategy_and_scratch_take_the_same_steps_and_the_report_shows_them(tmp_path):
    x, y = blobs(n_per_class=30)
    splits = few_shot((x, y), 10, seed=0, test=(x, y))   # 30 training examples: one step per epoch
    # patience beyond the budget: every run uses all of it, so the counts compare budgets exactly
    cfg = TrainConfig(epochs=2, batch_size=64, min_steps=48, patience=1000, progress=False, device="cpu")
    strategies = ["linear_probe", "lp_ft", "gradual_unfreeze", {"name": "lp_ft", "probe_fraction": 0.25},
                  {"name": "linear_probe", "solver": "sgd"}, {"name": "lp_ft", "probe_solver": "sgd"}]
    results = compare(_pretrained(), Task("t", "multiclass", num_classes=3), splits, strategies, cfg)
    steps = {r.strategy: r.steps for r in results}
    # the exact probe takes no optimizer steps, so LP-FT's fine-tuning gets the whole budget
    assert steps == {"scratch": 48, "linear_probe": 0, "lp_ft": 48, "gradual_unfreeze": 48,
                     "lp_ft(probe_fraction=0.25)": 48, "linear_probe(solver='sgd')": 48,
                     "lp_ft(probe_solver='sgd')": 48}
    lpft = next(r for r in results if r.strategy == "lp_ft")
    assert lpft.stages[0]["solver"] == "convex" and lpft.stages[1]["history"][-1]["step"] == 48
    sgd = next(r for r in results if r.strategy == "lp_ft(probe_solver='sgd')")
    assert [s["history"][-1]["step"] for s in sgd.stages] == [24, 24]
    rows = [r.to_dict() for r in results]
    assert rows[0]["steps"] == 48
    table = steps_table(summarize(rows))
    assert "| lp_ft | 48 |" in table and "| scratch | 48 |" in table
    paths = write_reports(tmp_path, rows, summarize(rows), "budget")
    assert "| gradual_unfreeze | 48 |" in paths["md"].read_text()


def test_default_finetune_moves_the_trunk_at_full_rate_only_with_many_labels():
    from taskshare.transfer import DataFacts, Finetune
    few, many = DataFacts(train_size=500, labels_per_class=100), DataFacts(train_size=5000, labels_per_class=1000)
    assert Finetune().stages(3, few)[0].lr_scales == [1 / 3] * 3        # every parameter at a plain loop's 1e-3
    assert Finetune(trunk_lr_scale=0.5).stages(3, few)[0].lr_scales == [0.5, 0.5, 1.0]   # relative to the head
    assert Finetune(head_lr_scale=0.5).stages(3, few)[0].lr_scales == [1 / 3, 1 / 3, 0.5]
    with pytest.raises(TaskshareError, match="head_lr_scale must be > 0, got 0"):
        Finetune(head_lr_scale=0).stages(3, few)
    assert Finetune().stages(3, many)[0].lr_scales == [1.0, 1.0, 1.0]
    assert Finetune().stages(3, DataFacts(train_size=500, labels_per_class=100, source_size=400))[0].lr_scales == [1.0] * 3
    assert Finetune(trunk_lr_scale=0.1).stages(3, many)[0].lr_scales == [0.1, 0.1, 1.0]


def test_default_patience_scales_with_the_epoch_cap():
    from taskshare.train.config import patience_of
    assert patience_of(TrainConfig()) == 40 and patience_of(TrainConfig(epochs=40)) == 8
    assert patience_of(TrainConfig(epochs=15)) == 8 and patience_of(TrainConfig(epochs=15, patience=2)) == 2
