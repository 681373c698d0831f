"""Everything adapt mode sets in Python is reachable from YAML: SHOT as a method, pull_limit, every
method's hyperparameters; wrong names and values stop before anything trains."""
import json

import numpy as np
import pytest
import torch
import yaml

import taskshare.adapt.train as adapt_train
import taskshare.experiments.adapt as adapt_experiment
from taskshare.cli import main


def _config(tmp_path, n=300, **adapt):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = (rng.normal(0, 2.5, (3, 6))[y] + rng.normal(0, 1, (n, 6))).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x[:2 * n // 3], y=y[:2 * n // 3])
    np.savez(tmp_path / "t.npz", x=x[2 * n // 3:] * 1.5 + 1.0, y=y[2 * n // 3:])
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
                   options={"mdd": {"margin": 2.0, "reverse_source": True}, "shot": {"pseudo_weight": 0.5, "min_source_accuracy": 0.4}})
    assert main(["run", str(path)]) == 0
    rows = json.loads((tmp_path / "out" / "adapt_results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["source_only", "mdd", "shot"]
    assert all(0 <= r["target"] <= 1 for r in rows)
    assert seen["pull_limit"] == [0.5, 0.5]                    # source_only and mdd; shot has no source loss
    assert any("margin=2.0" in m and "reverse_source=True" in m for m in seen["methods"])
    # SHOT is handed source-only's source validation accuracy (a number) to decide whether to adapt
    assert seen["shot"]["source_accuracy"] == rows[0]["source_val"] and seen["shot"]["pseudo_weight"] == 0.5
    assert seen["shot"]["min_source_accuracy"] == 0.4           # the user's own line reaches SHOT as written


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


@pytest.mark.slow
def test_adapt_mode_resumes_cut_runs_to_the_uninterrupted_results(tmp_path):
    """`taskshare run --resume` in adapt mode: each method's run checkpoints (its discriminator, the
    schedule, SHOT's pseudo-labels) live under the output; runs cut back to an earlier checkpoint
    resume to the rows the uninterrupted experiment wrote."""
    path = _config(tmp_path, n=900, methods=["source_only", "dann", "shot"])
    cfg = yaml.safe_load(path.read_text())
    cfg["adapt"]["train"].update(epochs=3, batch_size=32, patience=10, checkpoint_every=5, keep_checkpoints=10)
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--resume"]) == 0
    whole = json.loads((tmp_path / "out" / "adapt_results.json").read_text())["rows"]
    checkpoints, last = tmp_path / "out" / "checkpoints", {}

    def newest(method):
        files = sorted((checkpoints / method).glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
        return files, torch.load(files[-1], weights_only=False)

    for method in ("dann", "shot"):
        files, last[method] = newest(method)
        assert len(files) >= 5, files
        for newer in files[len(files) // 2:]:
            newer.unlink()                    # as if killed mid-run (SHOT: after its pseudo-labels were refreshed)
    (tmp_path / "out" / "adapt_results.json").unlink()
    assert main(["run", str(path), "--resume"]) == 0
    resumed = json.loads((tmp_path / "out" / "adapt_results.json").read_text())["rows"]
    assert whole[0]["source_val"] > 0.5 and "warning" not in whole[2]     # SHOT adapted: a good source model
    assert [(r["method"], r["source_val"], r["target"]) for r in resumed] == \
        [(r["method"], r["source_val"], r["target"]) for r in whole]
    for method in ("dann", "shot"):           # the weights and the method's state at the end, exactly
        end = newest(method)[1]
        assert end["step"] == last[method]["step"]
        for part in ("model", "stateful"):
            a, b = _leaves(end[part]), _leaves(last[method][part])
            assert a.keys() == b.keys() and a
            assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a), (method, part)


def _leaves(state, at=""):
    """A nested state dict as {"a.b.c": leaf}."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{at}{key}."))
        else:
            out[f"{at}{key}"] = value
    return out
