"""The validation layer: every case of the hostile-input report is refused with a message naming the
problem, from Python (TaskshareError) and from the command line (exit status 2, one line), before
anything trains."""
import numpy as np
import pytest
import yaml

from taskshare import Task, TaskshareError, TrainConfig, fit
from taskshare.cli import main
from taskshare.config import from_dict
from taskshare.errors import ConfigError
from taskshare.experiments.transfer import ExperimentConfig
from taskshare.models import build_model
from taskshare.validate import read_npz

QUIET = TrainConfig(epochs=1, min_steps=0, progress=False, device="cpu")


def _x(n=40, d=5):
    return np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("labels,message", [
    (np.linspace(0.5, 3.5, 40), "label 0.5; expected integers in [0, 3]"),
    (np.arange(40) % 4 + 10, "label 10; expected integers in [0, 3]"),
    (np.full(40, -2), "label -2; expected integers in [0, 3] or -1"),
    (np.full(40, -1), "every label in the training data is unknown"),
    (np.full(30, 1), "40 inputs but 30 labels"),
])
def test_fit_refuses_labels_that_do_not_fit_the_task(labels, message):
    with pytest.raises(TaskshareError) as err:
        fit(build_model("mlp", 5, 4, hidden=[8]), Task("t", num_classes=4), (_x(), labels), None, QUIET)
    assert message in str(err.value)


@pytest.mark.parametrize("kind,labels,message", [
    ("binary", np.array([0, 1, 2, 1.0] * 10), "label 2; expected 0 or 1"),
    ("binary", np.full(40, np.nan), "every label in the training data is unknown"),
    ("regression", np.array([0, 1, np.inf, 1.0] * 10), "infinite target"),
])
def test_binary_and_regression_labels_are_checked(kind, labels, message):
    with pytest.raises(TaskshareError, match=message):
        fit(build_model("mlp", 5, 1, hidden=[8]), Task("t", kind), (_x(), labels), None, QUIET)


def test_config_values_are_type_checked_at_construction_naming_the_field():
    with pytest.raises(ConfigError, match=r"train.epochs = '3'; expected an integer"):
        TrainConfig(epochs="3")
    with pytest.raises(ConfigError, match=r"train.clip_grad = 'x'; expected a number or null"):
        TrainConfig(clip_grad="x")
    assert TrainConfig(lr=1).lr == 1


def test_key_paths_are_spelled_one_way():
    with pytest.raises(ConfigError) as err:
        from_dict(ExperimentConfig, {"transfer": {"train": {"epochs": 0}}}, "config")
    assert str(err.value).startswith("config.transfer.train.epochs = 0; expected an integer >= 1")
    with pytest.raises(ConfigError) as err:
        from_dict(ExperimentConfig, {"transfer": {"train": {"epochs": "x"}}}, "config")
    assert str(err.value).startswith("config.transfer.train.epochs = 'x'")


def test_model_arguments_are_checked_against_the_signature():
    with pytest.raises(ConfigError, match="'hiden', which model 'mlp' does not take; allowed: hidden, dropout"):
        build_model("mlp", 5, 4, hiden=[3])
    with pytest.raises(TaskshareError, match="model 'mlp' cannot be built"):
        build_model("mlp", 5, 4, hidden=5)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    sentinel = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    np.savez(tmp_path / "d.npz", x=_x(4), y=np.array([Trap(), 1, 2, 3], dtype=object))
    with pytest.raises(TaskshareError, match=r"array 'y' in .*d.npz holds Python objects"):
        read_npz(tmp_path / "d.npz", ["x", "y"])
    assert not sentinel.exists()
    np.savez(tmp_path / "s.npz", x=_x(4), y=np.array(["a", "b", "c", "d"]))
    with pytest.raises(TaskshareError, match=r"array 'y' in .*s.npz has dtype <U1; expected an array of numbers"):
        read_npz(tmp_path / "s.npz", ["x", "y"])


def _cli(tmp_path, x, y, target=None, **changes):
    np.savez(tmp_path / "s.npz", x=x, y=y)
    cfg = {"source": {"npz": str(tmp_path / "s.npz")}, "target": {"npz": str(target or tmp_path / "s.npz")},
           "model": {"name": "mlp", "args": {"hidden": [8]}},
           "pretrain": {"train": {"epochs": 1, "min_steps": 0, "progress": False}},
           "transfer": {"shots": [2], "strategies": ["linear_probe"],
                        "train": {"epochs": 1, "min_steps": 0, "progress": False}},
           "output": str(tmp_path / "out")}
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return ["run", str(tmp_path / "c.yaml")]


GOOD_Y = np.arange(200) % 4


@pytest.mark.parametrize("x,y,changes,message", [
    (_x(200), np.linspace(0.5, 3.5, 200), {}, "has label 0.5; expected class indices"),
    (_x(200), GOOD_Y + 10, {}, "has labels 10..13 but class 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 never occurs"),
    (_x(200), GOOD_Y[:150], {}, "200 inputs but 150 labels"),
    (_x(200), np.where(GOOD_Y == 3, -2, GOOD_Y), {}, "has label -2"),
    (_x(0), GOOD_Y[:0], {}, "is empty"),
    (_x(200), GOOD_Y, {"model__args": {"hiden": [8]}}, "'hiden', which model 'mlp' does not take; allowed: hidden"),
    (_x(200), GOOD_Y, {"transfer__strategies": ["linear_prob"]}, "unknown strategy 'linear_prob'; expected one of"),
    (_x(200), GOOD_Y, {"transfer__shots": [30]}, "need 60 examples of every class"),
])
def test_the_command_refuses_bad_data_before_training(tmp_path, capsys, x, y, changes, message):
    assert main(_cli(tmp_path, x, y, **changes)) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out and "Traceback" not in out
    assert not (tmp_path / "out" / "pretrained.safetensors").exists()       # nothing trained


def test_the_command_refuses_targets_of_another_width_before_pretraining(tmp_path, capsys):
    np.savez(tmp_path / "t.npz", x=_x(200, 7), y=GOOD_Y)
    assert main(_cli(tmp_path, _x(200), GOOD_Y, target=tmp_path / "t.npz")) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "target inputs have 7 features per example but the source data have 5" in out
    assert not (tmp_path / "out" / "pretrained.safetensors").exists()


def test_a_missing_sidecar_is_reported_with_unreadable_weights(tmp_path):
    from taskshare.io import read_meta
    (tmp_path / "w.safetensors").write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(TaskshareError) as err:
        read_meta(tmp_path / "w.safetensors")
    assert "w.json is missing" in str(err.value) and "not a readable safetensors file" in str(err.value)
    with pytest.raises(TaskshareError, match="w2.json is missing.*w2.safetensors does not exist"):
        read_meta(tmp_path / "w2.safetensors")


def test_a_path_object_is_accepted_where_a_path_string_is_declared(tmp_path):
    assert TrainConfig(checkpoint_dir=tmp_path).checkpoint_dir == tmp_path
    with pytest.raises(ConfigError, match="train.checkpoint_dir = 3; expected a string or null"):
        TrainConfig(checkpoint_dir=3)


def test_a_transfer_whose_training_split_misses_a_class_is_refused_before_training():
    from taskshare.data import split
    from taskshare.models import transfer_model
    from taskshare.transfer import run_strategy
    x, y = _x(60), np.arange(60) % 3                      # classes 0-2 only, a head for 4
    net = build_model("mlp", 5, 3, hidden=[8])
    model = transfer_model(net, Task("t", num_classes=4), example=__import__("torch").as_tensor(x[:2]))
    with pytest.raises(TaskshareError, match=r"class 3 never occurs in the training data \(num_classes=4\)"):
        run_strategy(model, Task("t", num_classes=4), split((x, y), 0.2, seed=0), "linear_probe", QUIET)
