"""The README's YAML configs as written: every block builds and passes the checks run makes before
reading data (the adapt example among them), and the multi-task one runs (only the epochs shortened)
on a file holding the arrays it names."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskshare.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_multitask_yaml_runs(tmp_path, monkeypatch):
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S) if "mode: multitask" in b and "npz:" in b)
    cfg = yaml.safe_load(block)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    digit = np.arange(300) % 10
    digit[::7] = -1
    label_a = (x[:, 0] > 0).astype(np.float32)
    label_a[::5] = np.nan
    np.savez(tmp_path / "f.npz", x=x, label_a=label_a, digit=digit, score=x[:, 1] - x[:, 2])
    cfg["multitask"]["train"].update(epochs=1, min_steps=0, progress=False)
    monkeypatch.chdir(tmp_path)
    Path("mt.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", "mt.yaml"]) == 0
    rows = json.loads((tmp_path / cfg["output"] / "multitask_results.json").read_text())["results"]
    assert {r["mode"] for r in rows} == set(cfg["multitask"]["modes"])
    assert all(set(r["main"]) == {"a", "digit", "score"} for r in rows)


def _check_config(raw: dict) -> None:
    """A config built and checked as `taskshare run` does before reading any data."""
    from taskshare.experiments.adapt import load_adapt
    from taskshare.experiments.multitask import load_multitask
    from taskshare.experiments.own import is_own_config, load_own
    from taskshare.experiments.preflight import check_adapt, check_multitask
    from taskshare.experiments.transfer import ExperimentConfig
    from taskshare.config import from_dict
    from taskshare.transfer import build_strategy
    if is_own_config(raw):
        config = load_own(raw)
    elif raw.get("mode") == "adapt":
        check_adapt(load_adapt(raw))
        return
    elif raw.get("mode") == "multitask":
        check_multitask(load_multitask(raw))
        return
    else:
        config = from_dict(ExperimentConfig, raw, "config")
    for spec in config.transfer.strategies:
        build_strategy(spec)


def test_every_readme_yaml_block_is_a_config_that_passes_its_checks():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    modes = set()
    for block in blocks:
        raw = yaml.safe_load(block)
        _check_config(raw)
        modes.add(raw.get("mode", "transfer"))
    assert modes == {"transfer", "multitask", "adapt"}      # the adapt example is a block, so it is covered
