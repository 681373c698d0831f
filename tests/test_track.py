"""Experiment tracking, read back with each library's own reader: TensorBoard's event accumulator and
MLflow's client over its local file store."""
import numpy as np
import pytest
import yaml

from taskshare import Task, TaskshareError, TrainConfig, fit
from taskshare.cli import main
from taskshare.errors import ConfigError
from taskshare.models import build_model
from taskshare.experiments.track import open_trackers

pytest.importorskip("tensorboard")


def _blobs():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    return (rng.normal(0, 3, (3, 4))[y] + rng.normal(size=(90, 4))).astype(np.float32), y


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_fit_epochs_and_final_metrics_reach_tensorboard(tmp_path):
    x, y = _blobs()
    with open_trackers({"tensorboard": str(tmp_path / "tb")}) as tracker:
        tracker.log_config({"train": {"epochs": 3}})
        history = fit(build_model("mlp", 4, 3, hidden=[8]), Task("b", num_classes=3), (x[:60], y[:60]),
                      (x[60:], y[60:]), TrainConfig(epochs=3, min_steps=0, progress=False, device="cpu"),
                      callbacks=[tracker.epoch_callback("b")])
        tracker.log_metrics({"b/test_accuracy": 0.75})
    scalars = _scalars(tmp_path / "tb")
    logged = [v for _, v in scalars["b/val_score"]]
    assert [s for s, _ in scalars["b/val_score"]] == [0, 1, 2]
    assert logged == pytest.approx([e["val_score"] for e in history.epochs])
    assert scalars["b/test_accuracy"] == [(0, 0.75)]


def test_a_yaml_track_key_logs_the_run_and_is_checked_before_training(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    np.savez(tmp_path / "m.npz", x=x, a=(x[:, 0] > 0).astype(np.float32), b=x[:, 1])
    cfg = {"mode": "multitask", "data": {"npz": str(tmp_path / "m.npz"), "tasks": [
        {"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression"}]},
        "model": {"name": "mlp", "args": {"hidden": [8]}},
        "multitask": {"modes": ["single", "hard"], "train": {"epochs": 1, "min_steps": 0, "progress": False}},
        "output": str(tmp_path / "out"), "track": {"tensorboard": str(tmp_path / "tb")}}
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "mt.yaml")]) == 0
    scalars = _scalars(tmp_path / "tb")
    assert {"multitask/single/seed0/a", "multitask/hard/seed0/b", "multitask/hard/seed0/delta_m"} <= set(scalars)
    assert (tmp_path / "tb" / "artifacts" / "report.html").exists()
    cfg["track"] = {"tensorbord": "x"}
    cfg["output"] = str(tmp_path / "out2")
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "mt.yaml")]) == 2
    assert "config.track: unknown key 'tensorbord'; allowed keys: tensorboard, mlflow" in capsys.readouterr().out
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_mlflow_file_store_holds_config_metrics_and_artifacts(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")       # MLflow 3 asks for this opt-in
    uri = (tmp_path / "mlruns").as_uri()
    (tmp_path / "report.html").write_text("<html></html>")
    with open_trackers({"mlflow": uri}) as tracker:
        tracker.log_config({"train": {"epochs": 3, "lr": 0.001}})
        tracker.log_metrics({"b/val_score": 0.5}, step=0)
        tracker.log_metrics({"b/val_score": 0.6}, step=1)
        tracker.log_artifact(tmp_path / "report.html")
        run_id = tracker.trackers[0].run_id
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params == {"train.epochs": "3", "train.lr": "0.001"}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "b/val_score")] == [(0, 0.5), (1, 0.6)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.html"]
    assert run.info.status == "FINISHED"


def test_bad_track_values_are_named():
    with pytest.raises(ConfigError, match=r"config.track.tensorboard = 3"):
        with open_trackers({"tensorboard": 3}):
            pass
    assert issubclass(ConfigError, TaskshareError)
