"""Dense tasks declared in a multi-task YAML: the built-in dense scenes and an npz of per-pixel labels
(ignore index, masks), run end to end through `taskshare run` on tiny data."""
import json

import numpy as np
import pytest
import torch
import yaml

from taskshare.cli import main
from taskshare.data.dense_scenes import make_dense_scenes
from taskshare.errors import ConfigError, TaskshareError
from taskshare.experiments.multitask import build_data, load_multitask
from taskshare.tasks_dense import DenseTask

TRAIN = {"epochs": 2, "batch_size": 16, "min_steps": 0, "progress": False, "device": "cpu"}
MODEL = {"name": "cnn2d", "args": {"channels": [4, 8]}}


def run(tmp_path, data, modes, **multitask):
    cfg = {"mode": "multitask", "data": data, "model": MODEL, "output": str(tmp_path / "out"),
           "multitask": {"modes": modes, "train": TRAIN, **multitask}}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "mt.yaml")]) == 0
    return json.loads((tmp_path / "out" / "multitask_results.json").read_text())["results"]


@pytest.mark.slow
def test_builtin_dense_scenes_run_end_to_end(tmp_path):
    rows = run(tmp_path, {"builtin": "dense_scenes", "scenes": 120, "canvas": 16},
               ["single", "hard", "mtan"], balancer="upgrad")
    assert [r["mode"] for r in rows] == ["single", "hard", "mtan"]
    for r in rows:
        assert set(r["test"]) == {"seg", "depth", "normals", "count"}
        assert 0 <= r["test"]["seg"]["miou"] <= 1 and 0 <= r["test"]["seg"]["pixel_accuracy"] <= 1
        assert 0 < r["test"]["normals"]["mean_angle"] < 180 and r["test"]["depth"]["abs_err"] > 0
        assert r["delta_m"] is not None
    assert rows[1]["balancer"] == "upgrad" and rows[0]["balancer"] is None
    assert "| hard (upgrad) |" in (tmp_path / "out" / "multitask_report.md").read_text()


def write_npz(path, n=48, size=(12, 10), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, *size)).astype(np.float32)
    seg = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)     # classes 0-2
    seg[:, :2] = 255                                                         # unlabelled rows: the ignore index
    depth = np.abs(x[:, 0]) + 0.1
    valid = np.ones((n, *size), np.uint8)
    valid[:, :, :3] = 0                                                      # no depth on the left columns
    normals = np.stack([x[:, 0], x[:, 1], np.ones(size)[None].repeat(n, 0)], 1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    count = (x.mean((1, 2, 3)) > 0).astype(np.int64)
    np.savez(path, x=x, seg=seg, depth=depth, valid=valid, normals=normals.astype(np.float32), count=count)


TASKS = [{"name": "seg", "kind": "segmentation", "num_classes": 3, "ignore_index": 255},
         {"name": "depth", "kind": "depth", "mask": "valid"}, {"name": "normals", "kind": "normals"},
         {"name": "count", "kind": "multiclass", "num_classes": 2}]


def test_npz_dense_tasks_with_ignore_index_and_mask(tmp_path):
    write_npz(tmp_path / "d.npz")
    spec = load_multitask({"mode": "multitask", "data": {"npz": str(tmp_path / "d.npz"), "tasks": TASKS}})
    tasks, data = build_data(spec.data)
    seg, depth = tasks[0], tasks[1]
    assert isinstance(seg, DenseTask) and seg.ignore_index == 255 and seg.size == (12, 10)
    assert not isinstance(tasks[3], DenseTask)
    # the ignore index and the mask make exactly those pixels unknown
    assert not seg.known(torch.as_tensor(data.labels["seg"]))[:, :2].any()
    assert seg.known(torch.as_tensor(data.labels["seg"]))[:, 2:].all()
    d = torch.as_tensor(data.labels["depth"])
    assert torch.isnan(d[:, :, :3]).all() and torch.isfinite(d[:, :, 3:]).all()
    rows = run(tmp_path, {"npz": str(tmp_path / "d.npz"), "tasks": TASKS}, ["single", "hard", "cross_stitch"])
    assert [r["mode"] for r in rows] == ["single", "hard", "cross_stitch"]
    assert all(np.isfinite(r["test"]["depth"]["abs_err"]) and 0 <= r["test"]["seg"]["miou"] <= 1 for r in rows)


def test_dense_scenes_arrays_are_consistent():
    images = np.zeros((4, 8, 8), np.float32)
    images[:, 2:6, 2:6] = 16.0                              # 0-16 intensities, as sklearn's digits
    s = make_dense_scenes(images, np.arange(4), 5, canvas=16, seed=0)
    assert s["x"].shape == (5, 1, 16, 16) and s["x"].max() == 1.0
    inked = s["x"][:, 0] > 0.3
    assert ((s["seg"] >= 0) == inked).all()                # every inked pixel labelled, nothing else
    assert np.allclose(np.linalg.norm(s["normals"], axis=1), 1, atol=1e-5)
    assert set(np.unique(s["count"])) <= {0, 1, 2} and (s["depth"] >= 0).all()


def test_bad_dense_declarations_are_named(tmp_path):
    write_npz(tmp_path / "d.npz")
    bad_mask = [dict(TASKS[0]), {"name": "count", "kind": "multiclass", "num_classes": 2, "mask": "valid"}]
    with pytest.raises(ConfigError, match="mask, which applies to the dense kinds"):
        build_data(load_multitask({"data": {"npz": str(tmp_path / "d.npz"), "tasks": bad_mask}}).data)
    wrong_index = [{"name": "seg", "kind": "segmentation", "num_classes": 3}]     # 255 is not the ignore index
    with pytest.raises(TaskshareError, match="pixel label 255"):
        build_data(load_multitask({"data": {"npz": str(tmp_path / "d.npz"), "tasks": wrong_index}}).data)
    with pytest.raises(ConfigError, match="dense scenes have no task 'edges'"):
        build_data(load_multitask({"data": {"builtin": "dense_scenes", "tasks": [{"name": "edges", "kind": "depth"}]}}).data)
