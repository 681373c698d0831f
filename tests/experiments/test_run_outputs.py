"""What multi-task runs write and print: report.html in an own-data run's folder, what the kept model is
and why, and a per-row mean that names what it averages."""
import json

import numpy as np
import yaml

from taskshare.cli import main

from ..data.own_files import table_csv

FAST = {"epochs": 1, "min_steps": 0, "batch_size": 32, "progress": False}


def test_own_data_multitask_writes_report_html_and_says_why_hard_sharing_is_kept(tmp_path, capsys):
    table_csv(tmp_path / "survey.csv", n=80)
    config = {"mode": "multitask", "data": {"csv": str(tmp_path / "survey.csv"), "labels": ["big", "shade"]},
              "model": {"name": "mlp", "args": {"hidden": [8]}}, "output": str(tmp_path / "run"),
              "multitask": {"modes": ["single"], "train": FAST}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "s.yaml")]) == 0
    html = (tmp_path / "run" / "report.html").read_text()
    assert "single" in html and "big" in html and "shade" in html
    kept = json.loads((tmp_path / "run" / "run.json").read_text())["kept"]
    assert kept["strategy"] == "hard sharing" and "did not ask for it" in kept["why"]
    out = " ".join(capsys.readouterr().out.split())
    assert f"kept a hard-sharing model: {kept['why']}" in out and "mean accuracy" in out


def test_npz_multitask_row_line_names_a_mean_over_different_metrics(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=x, a=(x[:, 0] > 0).astype(np.float32), score=x[:, 1])
    config = {"mode": "multitask", "output": str(tmp_path / "run"),
              "data": {"npz": str(tmp_path / "f.npz"), "tasks": [{"name": "a", "kind": "binary"},
                                                                {"name": "score", "kind": "regression"}]},
              "model": {"name": "mlp", "args": {"hidden": [8]}},
              "multitask": {"modes": ["single", "hard"], "train": FAST}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "m.yaml")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "seed=0" in line]
    assert len(lines) == 2 and all("mean main metric" in line and "auroc" not in line for line in lines)
