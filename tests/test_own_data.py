"""Your own files end to end through the command: run, predict, export; and every bad input stops
or warns with the file or class named."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import taskshare
from taskshare.cli import main

from .data.own_files import image_folder, table_csv, tiny_bert, truncate, write_image

pytest.importorskip("timm")
TINY = {"timm": "test_efficientnet", "image_size": 32}   # timm's own test network: 0.1M parameters
FAST = {"epochs": 2, "min_steps": 0, "batch_size": 8, "progress": False, "device": "cpu"}


def write_config(path: Path, **config) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def image_run(tmp_path, strategies=("linear_probe",), **extra) -> Path:
    pics = image_folder(tmp_path / "pics", per_class=10)
    config = {"target": {"image_folder": str(pics)}, "model": TINY, "output": str(tmp_path / "run"),
              "transfer": {"shots": ["all"], "strategies": list(strategies), "train": FAST}, **extra}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 0
    return tmp_path / "run"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return image_run(tmp_path_factory.mktemp("own"))


@pytest.mark.slow
def test_run_folder_holds_what_using_it_needs(run_dir):
    run = taskshare.load(run_dir)
    assert run.class_names == {"label": ["dark", "light"]} and run.kind == "image"
    assert run.record["strategy"] in ("scratch", "linear_probe") and run.input["encoding"]["size"] == [32, 32]
    assert not run.model.training
    # the reloaded model computes what the trained one did: same weights, same preprocessing
    x = run.encode([str(run_dir.parent / "pics" / "dark" / "0.png")])
    assert x.shape == (1, 3, 32, 32)
    again = taskshare.load(run_dir)
    assert torch.equal(run.model(x), again.model(x))


@pytest.mark.slow
def test_predict_writes_one_row_per_input_with_class_names(run_dir, tmp_path):
    out = tmp_path / "p.csv"
    assert main(["predict", str(run_dir), str(run_dir.parent / "pics"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 20 and set(rows[0]) == {"input", "label", "label_probability", "label:dark", "label:light"}
    run = taskshare.load(run_dir)
    probs = run.predict([r["input"] for r in rows])["label"]
    for row, p in zip(rows, probs):
        assert row["label"] == ["dark", "light"][int(p.argmax())]
        assert float(row["label:dark"]) + float(row["label:light"]) == pytest.approx(1.0, abs=1e-5)
        assert float(row["label:light"]) == pytest.approx(float(p[1]), abs=1e-5)
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(r["input"] for r in rows[:3]))
    assert main(["predict", str(run_dir), str(listing), "--out", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 3


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(run_dir, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / f"m.{fmt}"
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    run = taskshare.load(run_dir)
    x = run.encode([str(p) for p in sorted((run_dir.parent / "pics" / "light").glob("*.png"))[:3]])
    expected = torch.softmax(run.model(x), -1).detach().numpy()
    if fmt == "onnx":
        import onnxruntime as ort
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"inputs": x.numpy()})[0]
    else:
        got = torch.jit.load(str(out))(x)[0].detach().numpy()
    assert np.abs(got - expected).max() < 1e-4     # real images, not only the check's sample


@pytest.mark.slow
def test_csv_with_two_label_columns_trains_two_tasks(tmp_path):
    data = table_csv(tmp_path / "t.csv", n=160)
    config = {"mode": "multitask", "data": {"csv": str(data), "labels": ["big", "shade"]},
              "model": {"name": "mlp", "args": {"hidden": [32]}}, "output": str(tmp_path / "mt"),
              "multitask": {"modes": ["single", "hard"], "train": {**FAST, "epochs": 15, "batch_size": 32, "lr": 0.02}}}
    assert main(["run", str(write_config(tmp_path / "mt.yaml", **config))]) == 0
    assert (tmp_path / "mt" / "multitask_report.md").exists()
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "mt"), str(data), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    truth = list(csv.DictReader(data.open()))
    big = np.mean([r["big"] == t["big"] for r, t in zip(rows, truth)])
    shade = np.mean([r["shade"] == t["shade"] for r, t in zip(rows, truth) if t["shade"]])
    assert big > 0.85 and shade > 0.85      # both tasks learnt, the half-blank one from its known half


@pytest.mark.slow
def test_augmentation_turns_the_feature_cache_off(tmp_path, caplog):
    with caplog.at_level("INFO", logger="taskshare"):
        run = image_run(tmp_path, augment={"preset": "light", "flip": False})
    assert "feature cache is off" in caplog.text and "light_crop" in caplog.text
    results = yaml.safe_load((run / "results.json").read_text())["results"]
    assert not any(r["cached"] for r in results)


def test_single_class_folder_stops_before_training(tmp_path, capsys):
    pics = image_folder(tmp_path / "pics", per_class=6, classes=("only",))
    config = {"target": {"image_folder": str(pics)}, "model": TINY, "output": str(tmp_path / "run")}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 2
    assert "single class ('only')" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.slow
def test_class_smaller_than_the_shots_is_named(tmp_path, capsys):
    pics = image_folder(tmp_path / "pics", per_class=10)
    for p in sorted((pics / "light").glob("*.png"))[:6]:
        p.unlink()
    config = {"target": {"image_folder": str(pics)}, "model": TINY, "output": str(tmp_path / "run"),
              "transfer": {"shots": [3], "strategies": ["linear_probe"], "train": FAST}}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 2
    text = " ".join(capsys.readouterr().out.split())
    assert "class 'light'" in text and "shots=3 needs 6" in text


def test_strict_stops_at_the_truncated_file(tmp_path, capsys):
    pics = image_folder(tmp_path / "pics", per_class=4)
    truncate(pics / "light" / "2.png")
    config = {"target": {"image_folder": str(pics), "strict": True}, "model": TINY, "output": str(tmp_path / "run")}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 2
    text = "".join(capsys.readouterr().out.split())
    assert "2.pngisunreadable" in text and "strict" in text


@pytest.mark.slow
def test_predict_reports_labels_the_model_never_saw(run_dir, tmp_path, caplog):
    write_image(tmp_path / "x.png", True, "RGB")
    (tmp_path / "in.csv").write_text("path,label\nx.png,light\nx.png,purple\n")
    with caplog.at_level("WARNING", logger="taskshare"):
        assert main(["predict", str(run_dir), str(tmp_path / "in.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    assert "['purple']" in caplog.text and "not trained on" in caplog.text


def test_predict_needs_a_run_folder(tmp_path, capsys):
    assert main(["predict", str(tmp_path), str(tmp_path)]) == 2
    assert "run.json" in capsys.readouterr().out


@pytest.mark.slow
def test_builtin_model_pretrained_on_a_source_table_then_a_separate_test_table(tmp_path):
    source = table_csv(tmp_path / "source.csv", n=200, seed=1)
    target = table_csv(tmp_path / "target.csv", n=120, seed=2)
    test = table_csv(tmp_path / "test.csv", n=60, seed=3)
    config = {"source": {"csv": str(source), "label": "big"}, "target": {"csv": str(target), "label": "big"},
              "test": {"csv": str(test), "label": "big"}, "model": {"name": "mlp", "args": {"hidden": [16]}},
              "pretrain": {"train": {**FAST, "epochs": 20, "lr": 0.01}}, "output": str(tmp_path / "run"),
              "transfer": {"shots": [5, "all"], "strategies": ["linear_probe"], "train": {**FAST, "epochs": 20, "lr": 0.01}}}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 0
    run = taskshare.load(tmp_path / "run")
    assert run.record["input"]["encoding"]["columns"][0]["mean"] == pytest.approx(
        float(np.mean([float(r["x1"]) for r in csv.DictReader(source.open())])), abs=1e-3)  # the source's scaling
    results = yaml.safe_load((tmp_path / "run" / "results.json").read_text())["results"]
    probe_all = next(r for r in results if r["strategy"] == "linear_probe" and r["labels_per_class"] == "all")
    assert probe_all["test"]["accuracy"] > 0.85          # 60 rows of the separate test file


def test_test_source_with_a_class_training_lacks_is_named(tmp_path, capsys):
    pics = image_folder(tmp_path / "pics", per_class=6)
    other = image_folder(tmp_path / "other", per_class=2, classes=("dark", "grey"))
    config = {"target": {"image_folder": str(pics)}, "test": {"image_folder": str(other)}, "model": TINY,
              "output": str(tmp_path / "run"), "transfer": {"shots": [2], "train": FAST}}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 2
    assert "['grey']" in capsys.readouterr().out


@pytest.mark.slow
def test_jsonl_text_through_a_hub_style_folder_then_predict_a_text_file(tmp_path, monkeypatch):
    """A tiny BERT saved as a local folder, with MiniLM's tokenizer: texts are tokenized by it in
    training and again at predict time."""
    folder = tiny_bert(tmp_path / "tiny-bert", monkeypatch, hidden=32)
    words = {"sport": ["goal", "match", "team", "score"], "food": ["bread", "soup", "bake", "salt"]}
    rng = np.random.default_rng(0)
    lines = []
    for i in range(80):
        topic = ["sport", "food"][i % 2]
        lines.append({"text": " ".join(rng.choice(words[topic], 4)), "topic": topic})
    import json
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in lines))
    config = {"target": {"jsonl": str(tmp_path / "t.jsonl"), "label": "topic"},
              "model": {"hf": str(folder), "max_length": 8}, "output": str(tmp_path / "run"),
              "transfer": {"shots": ["all"], "strategies": ["linear_probe"], "train": {**FAST, "epochs": 30, "lr": 0.03}}}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 0
    (tmp_path / "new.txt").write_text("goal team match\nsoup bread salt\n")
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "new.txt"), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["topic"] for r in rows] == ["sport", "food"]


def test_own_data_run_keeps_out_of_a_folder_of_other_files(tmp_path, capsys):
    pics = image_folder(tmp_path / "pics", per_class=6)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("mine")
    config = {"target": {"image_folder": str(pics)}, "model": TINY, "output": str(tmp_path / "run"),
              "transfer": {"shots": ["all"], "strategies": ["linear_probe"], "train": FAST}}
    assert main(["run", str(write_config(tmp_path / "c.yaml", **config))]) == 2
    assert "run" in capsys.readouterr().out and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["thesis.tex"]
