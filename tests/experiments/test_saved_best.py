"""Which transferred model an npz run saves as k{shot}_seed{seed}_best: auto's when auto ran, else the
best validation score, a transfer strategy displacing scratch on a tie and a NaN score below every
number: kept.py's rule, so the same model a run on your own data keeps."""
import math
from types import SimpleNamespace

import pytest
from torch import nn

from taskshare import Task
from taskshare.experiments.specs import ModelSpec
from taskshare.experiments.kept import Trained, choose_kept
from taskshare.experiments.transfer import ExperimentConfig, _model_saver
from taskshare.transfer import STRATEGIES
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


def test_a_nan_validation_score_loses_to_any_finite_one_whichever_ran_first(tmp_path):
    # NaN compares false both ways: saved first, it once blocked every later model
    assert _saved_after(tmp_path / "first", [("linear_probe", math.nan), ("lp_ft", 0.2)]) == "lp_ft"
    assert _saved_after(tmp_path / "later", [("linear_probe", 0.2), ("lp_ft", math.nan)]) == "linear_probe"
    assert _saved_after(tmp_path / "scratch", [("scratch", 0.1), ("finetune", math.nan)]) == "scratch"


NAN = math.nan


@pytest.mark.parametrize("runs", [
    [("scratch", 0.9), ("lp_ft", 0.9), ("linear_probe", 0.9), ("finetune", 0.8)],      # a tie of three
    [("linear_probe", 0.9), ("scratch", 0.9)],                                         # scratch tied, listed later
    [("scratch", 0.9), ("linear_probe", 0.8)],                                         # scratch's strict lead
    [("scratch", 0.8), ("linear_probe", 0.9), ("finetune", 0.95), ("lp_ft", 0.95)],    # the best, then a tie
    [("scratch", 0.95), ("linear_probe", 0.9), ("auto", 0.8), ("finetune", 0.99)],     # auto present
    [("auto", 0.5), ("scratch", 0.9)],                                                 # auto first
    [("linear_probe", NAN), ("scratch", 0.5), ("lp_ft", NAN)],                         # NaN against a number
    [("scratch", NAN), ("linear_probe", NAN)],                                         # nothing but NaN
])
def test_the_npz_saver_and_own_data_runs_keep_the_same_model(tmp_path, runs):
    trained = [Trained(STRATEGIES.build(name), nn.Linear(2, 3),
                       SimpleNamespace(strategy="auto -> lp_ft" if name == "auto" else name, val_score=val))
               for name, val in runs]
    labelled = [(t.result.strategy, t.result.val_score) for t in trained]
    assert _saved_after(tmp_path, labelled) == choose_kept(trained)[0].result.strategy
