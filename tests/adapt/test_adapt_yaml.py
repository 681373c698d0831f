"""Everything adapt mode sets in Python is reachable from YAML: SHOT as a method, pull_limit, every
method's hyperparameters; wrong names and values stop before anything trains."""
import json

import numpy as np
import pytest
import yaml

import taskshare.adapt.train as adapt_train
import taskshare.experiments.adapt as adapt_experiment
from taskshare.cli import main


def _config(tmp_path, **adapt):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (rng.normal(0, 2.5, (3, 6))[y] + rng.normal(0, 1, (300, 6))).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x[:200], y=y[:200])
    np.savez(tmp_path / "t.npz", x=x[200:] * 1.5 + 1.0, y=y[200:])
    cfg = {"mode": "adapt", "task": {"name": "c", "kind": "multiclass", "num_classes": 3},
           "data": {"source": {"npz": str(tmp_path / "s.npz")}, "target": {"npz": str(tmp_path / "t.npz")}},
           "model": {"name": "mlp", "args": {"hidden": [16]}},
           "adapt": {"train": {"epochs": 2, "min_steps": 0, "progress": False, "device": "cpu"}, **adapt},
           "output": str(tmp_path / "out")}
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_shot_pull_limit_and_method_arguments_from_yaml(tmp_path, monkeypatch):
    seen = {}
    build, objective = adapt_train.build_method, adapt_train.adaptation_objective

    def record_build(spec):
        method = build(spec)
        seen.setdefault("methods", []).append(repr(method))
        return method

    def record_objective(task, method, weight, progress, pull_limit):
        seen.setdefault("pull_limit", []).append(pull_limit)
        return objective(task, method, weight, progress, pull_limit)

    def record_shot(*args, **kwargs):
        seen["shot"] = kwargs
        return shot(*args, **kwargs)

    shot = adapt_experiment.fit_source_free
    monkeypatch.setattr(adapt_experiment, "fit_source_free", record_shot)
    monkeypatch.setattr(adapt_train, "build_method", record_build)
    monkeypatch.setattr(adapt_train, "adaptation_objective", record_objective)
    path = _config(tmp_path, methods=["source_only", "mdd", "shot"], pull_limit=0.5,
                   options={"mdd": {"margin": 2.0, "reverse_source": True}, "shot": {"pseudo_weight": 0.5}})
    assert main(["run", str(path)]) == 0
    rows = json.loads((tmp_path / "out" / "adapt_results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["source_only", "mdd", "shot"]
    assert all(0 <= r["target"] <= 1 for r in rows)
    assert seen["pull_limit"] == [0.5, 0.5]                    # source_only and mdd; shot has no source loss
    assert any("margin=2.0" in m and "reverse_source=True" in m for m in seen["methods"])
    # SHOT is handed source-only's source validation accuracy (a number) to decide whether to adapt
    assert seen["shot"]["source_accuracy"] == rows[0]["source_val"] and seen["shot"]["pseudo_weight"] == 0.5


@pytest.mark.parametrize("adapt, message", [
    ({"methods": ["source_only", "mdd"], "options": {"mdd": {"marginn": 2.0}}}, "config.adapt.options.mdd"),
    ({"methods": ["source_only", "shot"], "options": {"shot": {"rounds": 3}}}, "unknown key 'rounds'"),
    ({"methods": ["source_only", "shot"], "options": {"shot": {"pseudo_weight": "x"}}}, "pseudo_weight = 'x'"),
    ({"methods": ["source_only", "shot"], "options": {"shot": {"min_source_accuracy": 2}}}, "min_source_accuracy = 2"),
    ({"methods": ["shot"]}, "expected source_only listed before shot"),
    ({"methods": ["source_only", "dan"], "pull_limit": -1.0}, "adapt.pull_limit = -1.0"),
])
def test_bad_adapt_settings_stop_before_training(tmp_path, capsys, adapt, message):
    assert main(["run", str(_config(tmp_path, **adapt))]) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "out" / "adapt_results.json").exists()
