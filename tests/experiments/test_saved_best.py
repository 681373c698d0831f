"""Which transferred model an npz run saves as k{shot}_seed{seed}_best: auto's when auto ran, else the
best validation score, a transfer strategy displacing scratch on a tie."""
from types import SimpleNamespace

from torch import nn

from taskshare import Task
from taskshare.experiments.specs import ModelSpec
from taskshare.experiments.transfer import ExperimentConfig, _model_saver
from taskshare.train import read_meta


def _saved_after(tmp_path, runs):
    saver = _model_saver(ExperimentConfig(model=ModelSpec("mlp", {"hidden": [4]})), Task("b", num_classes=3),
                         tmp_path, 5, 0)
    for strategy, val in runs:
        saver(nn.Linear(2, 3), SimpleNamespace(strategy=strategy, val_score=val, test={"accuracy": val}))
    return read_meta(tmp_path / "models" / "k5_seed0_best.safetensors")["strategy"]


def test_a_tie_with_scratch_goes_to_the_transfer_strategy_and_later_ties_keep_the_first(tmp_path):
    assert _saved_after(tmp_path, [("scratch", 0.9), ("linear_probe", 0.9), ("lp_ft", 0.9)]) == "linear_probe"


def test_a_strictly_better_score_still_wins(tmp_path):
    assert _saved_after(tmp_path, [("scratch", 0.9), ("linear_probe", 0.8), ("finetune", 0.95)]) == "finetune"


def test_autos_choice_is_kept_whatever_scores_come_after(tmp_path):
    runs = [("scratch", 0.9), ("linear_probe", 0.92), ("auto -> lp_ft", 0.91), ("finetune", 0.99)]
    assert _saved_after(tmp_path, runs) == "auto -> lp_ft"
