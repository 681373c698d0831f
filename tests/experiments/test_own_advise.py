"""`taskshare advise CONFIG` on own-data configs: a transfer config is advised (it stopped at the
documented keys, "config.target: unknown key 'image_folder'"); a multi-task one is refused, saying
which configs advise takes and what to do instead."""
import json

import pytest
import yaml

from taskshare.cli import main

from ..data.own_files import image_folder, table_csv

FAST = {"epochs": 2, "min_steps": 0, "progress": False}


def test_advise_a_csv_target_with_a_builtin_pretrained_on_the_source(tmp_path, capsys):
    table_csv(tmp_path / "source.csv", n=60, seed=1)
    table_csv(tmp_path / "target.csv", n=60, seed=2)
    config = {"source": {"csv": str(tmp_path / "source.csv"), "label": "big"},
              "target": {"csv": str(tmp_path / "target.csv"), "label": "big"},
              "model": {"name": "mlp", "args": {"hidden": [8]}}, "output": str(tmp_path / "run"),
              "pretrain": {"train": FAST}, "transfer": {"shots": [5, "all"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["advise", str(tmp_path / "c.yaml")]) == 0
    advice = json.loads((tmp_path / "run_advice" / "advice.json").read_text())
    assert [a["labels_per_class"] for a in advice] == [5, "all"]
    best = advice[0]["advice"]["candidates"][0]
    assert best["name"] == "mlp" and best["leep"] is not None     # the source head is there: LEEP scored
    assert (tmp_path / "run_advice" / "report.html").exists() and not (tmp_path / "run").exists()
    assert "advice before training" in capsys.readouterr().out


def test_advise_an_image_folder_with_a_hub_model(tmp_path):
    pytest.importorskip("timm")
    image_folder(tmp_path / "photos", per_class=12)
    config = {"target": {"image_folder": str(tmp_path / "photos")}, "output": str(tmp_path / "run"),
              "model": {"timm": "test_efficientnet", "image_size": 32}, "transfer": {"shots": [2, "all"]}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    assert main(["advise", str(tmp_path / "p.yaml")]) == 0
    advice = json.loads((tmp_path / "run_advice" / "advice.json").read_text())
    assert [a["labels_per_class"] for a in advice] == [2, "all"]
    best = advice[1]["advice"]["candidates"][0]
    assert best["leep"] is None and best["logme"] == best["logme"]   # a trunk without its head: LogME only
    assert advice[1]["strategy"] in ("scratch", "linear_probe", "lp_ft")


def test_advise_refuses_a_multitask_config_saying_what_it_takes(tmp_path, capsys):
    table_csv(tmp_path / "survey.csv", n=40)
    config = {"mode": "multitask", "data": {"csv": str(tmp_path / "survey.csv"), "labels": ["big", "shade"]},
              "output": str(tmp_path / "run")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    assert main(["advise", str(tmp_path / "s.yaml")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "mode: multitask" in out and "transfer config" in out and "taskshare run" in out
    assert "unknown key" not in out
