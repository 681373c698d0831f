"""Which model a run on your own data keeps: auto's when it ran, else the best on validation with ties
going to the first listed strategy and scratch last; and the run says why, in its output and run.json."""
import json
from types import SimpleNamespace

import pytest
import yaml
from torch import nn

from taskshare.cli import main
from taskshare.errors import TaskshareError
from taskshare.experiments.kept import Trained, choose_kept
from taskshare.transfer import STRATEGIES

from ..data.own_files import table_csv


def trained(name: str, val: float, **args) -> Trained:
    label = name if name != "auto" else "auto -> lp_ft"
    return Trained(STRATEGIES.build({"name": name, **args}), nn.Linear(2, 2), SimpleNamespace(strategy=label, val_score=val))


def test_auto_is_kept_when_it_ran_even_below_another_validation_score():
    runs = [trained("scratch", 1.0), trained("linear_probe", 1.0), trained("auto", 0.9)]
    kept, why = choose_kept(runs)
    assert kept is runs[2] and "auto's choice" in why


def test_a_tie_goes_to_the_first_listed_strategy_never_to_scratch_listed_first():
    # scratch is inserted first by the run, as it was when ties kept it
    runs = [trained("scratch", 0.955), trained("lp_ft", 0.955), trained("linear_probe", 0.955), trained("finetune", 0.9)]
    kept, why = choose_kept(runs)
    assert kept is runs[1]
    assert "tied with linear_probe, scratch" in why and "listed first" in why


def test_a_strict_lead_wins_over_order_and_scratch_can_win_one():
    runs = [trained("scratch", 0.97), trained("lp_ft", 0.955)]
    assert choose_kept(runs)[0] is runs[0]
    lower = [trained("scratch", 0.2), trained("lp_ft", 0.3)]                  # a loss: lower is better
    assert choose_kept(lower, higher_is_better=False)[0] is lower[0]


def test_adapters_only_is_refused_with_a_way_out():
    lora = Trained(STRATEGIES.build("linear_probe"), nn.Module(), SimpleNamespace(strategy="lora", val_score=1.0))
    lora.model.lora_A = nn.Linear(2, 2)
    with pytest.raises(TaskshareError, match="plain weights.*linear_probe"):
        choose_kept([lora])


@pytest.mark.parametrize("strategies, expected", [(["linear_probe", "lp_ft"], "linear_probe"),
                                                  (["linear_probe", "auto"], "auto -> ")])
def test_run_json_and_output_say_what_was_kept_and_why(tmp_path, capsys, strategies, expected):
    # x1 alone decides the label: every strategy reaches 100% on validation, a tie
    table_csv(tmp_path / "source.csv", n=60, seed=1)
    table_csv(tmp_path / "target.csv", n=60, seed=2)
    config = {"source": {"csv": str(tmp_path / "source.csv"), "label": "big"},
              "target": {"csv": str(tmp_path / "target.csv"), "label": "big"},
              "model": {"name": "mlp", "args": {"hidden": [8]}}, "output": str(tmp_path / "run"),
              "pretrain": {"train": {"epochs": 3, "min_steps": 0, "progress": False}},
              "transfer": {"shots": ["all"], "strategies": strategies,
                           "train": {"epochs": 3, "min_steps": 0, "progress": False, "lr": 0.05}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "c.yaml")]) == 0
    kept = json.loads((tmp_path / "run" / "run.json").read_text())["kept"]
    assert kept["strategy"].startswith(expected) and kept["labels_per_class"] == "all" and kept["seed"] == 0
    if expected == "linear_probe":     # on today's tie every strategy had, scratch (run first) was kept
        assert "tied with" in kept["why"] and "scratch" in kept["why"]
    out = " ".join(capsys.readouterr().out.split())
    assert f"kept {kept['strategy']} (k=all, seed 0): {kept['why']}" in out
