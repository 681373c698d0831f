"""The README's "Your own data" commands run as written, on small files made here: an image folder
through run, predict and export; a CSV with two label columns (one half blank) as two tasks. The
one change: the training budgets are cut (and the photos model swapped for timm's tiny test
network, since MobileNetV2 with DEFAULT weights would download), so the test takes seconds."""
import csv
import re
import shlex
from pathlib import Path

import pytest
import yaml

from taskshare.cli import main

from .data.own_files import image_folder, table_csv

README = Path(__file__).resolve().parents[1] / "README.md"
pytestmark = pytest.mark.slow


def section() -> str:
    text = README.read_text()
    return text.split("## Your own data", 1)[1].split("\n## ", 1)[0]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def run_commands(block: str) -> None:
    for line in block.strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "taskshare"
        assert main(args[1:]) == 0, line


def test_image_folder_to_predict_and_export(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    config_text = next(b for b in blocks("yaml") if "photos.yaml" in b)
    config = yaml.safe_load(config_text)
    config["model"] = {"timm": "test_efficientnet", "image_size": 32}
    config["transfer"]["train"] = {"epochs": 1, "min_steps": 0, "batch_size": 16, "progress": False, "device": "cpu"}
    Path("photos.yaml").write_text(yaml.safe_dump(config))
    image_folder(Path("photos"), per_class=26)
    image_folder(Path("new_photos"), per_class=2)
    run_commands(next(b for b in blocks("bash") if "photos.yaml" in b))
    rows = list(csv.DictReader(open("predictions.csv")))
    assert len(rows) == 4 and {r["label"] for r in rows} <= {"dark", "light"}
    assert Path("runs/photos/model.onnx").exists()


def test_csv_with_two_label_columns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_text = next(b for b in blocks("yaml") if "survey.yaml" in b)
    config = yaml.safe_load(config_text)
    config["multitask"]["train"] = {"epochs": 15, "min_steps": 0, "batch_size": 32, "lr": 0.02, "progress": False}
    Path("survey.yaml").write_text(yaml.safe_dump(config))
    table_csv(Path("survey.csv"), n=200)
    run_commands(next(b for b in blocks("bash") if "survey.yaml" in b))
    rows = list(csv.DictReader(open("survey_predictions.csv")))
    truth = list(csv.DictReader(open("survey.csv")))
    assert len(rows) == 200
    right = [r["shade"] == t["shade"] for r, t in zip(rows, truth) if t["shade"]]
    assert sum(right) / len(right) > 0.85       # the half-labelled task is learnt from its known half
