"""Hostile inputs, generated: arrays, labels and configs through the Python API and the command line.
Every outcome is a result for valid input or, for invalid input, a TaskshareError (API) or exit
status 2 with one line naming the problem (CLI): never a traceback, never a result from bad data."""
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskshare import Task, TaskshareError, TrainConfig, fit
from taskshare.cli import main
from taskshare.models import build_model

POOL = [-3, -2, -1, 0, 1, 2, 3, 5, 11, 0.5, 2.5, float("nan"), float("inf"), -float("inf")]
LABELS = st.lists(st.sampled_from(POOL), min_size=0, max_size=12)
QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_for_fit(kind: str, classes: int, n_inputs: int, y: np.ndarray) -> bool:
    """An independent statement of what fit must accept."""
    if len(y) == 0 or n_inputs != len(y):
        return False
    if kind == "multiclass":
        ok = np.isfinite(y) & (y == np.round(y)) & (y >= -1) & (y < classes)
        return bool(ok.all() and (y != -1).any())
    if kind == "binary":
        known = ~np.isnan(y) & (y != -1)
        return bool(np.isin(y[known], [0, 1]).all() and known.any())
    known = ~np.isnan(y) & (y != -1)
    return bool(not np.isinf(y).any() and known.any())


@QUICK
@given(kind=st.sampled_from(["multiclass", "binary", "regression"]), classes=st.integers(2, 4), labels=LABELS,
       extra=st.sampled_from([0, 0, 0, 1, -1]))
def test_fit_with_any_labels_trains_only_on_valid_ones(kind, classes, labels, extra):
    y = np.array(labels, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(max(0, len(y) + extra), 3)).astype(np.float32)
    task = Task("t", kind, classes if kind == "multiclass" else None)
    model = build_model("mlp", 3, task.out_dim, hidden=[4])
    try:
        fit(model, task, (x, y), None, TrainConfig(epochs=1, min_steps=0, batch_size=4, progress=False, device="cpu"))
    except TaskshareError as err:
        assert "\n" not in str(err) and len(str(err)) > 10
        assert not _valid_for_fit(kind, classes, len(x), y), f"valid input refused: {err}"
    else:
        assert _valid_for_fit(kind, classes, len(x), y), f"invalid labels trained silently: {y.tolist()}"


CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.sampled_from(["3", "x", "1e-3", "all"]),
                          st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(-1, 3), max_size=2))


@QUICK
@given(st.dictionaries(st.sampled_from(["epochs", "lr", "batch_size", "patience", "schedule", "clip_grad", "amp"]),
                       CONFIG_VALUES, min_size=1, max_size=3))
def test_train_config_built_from_python_is_valid_or_names_the_field(values):
    try:
        TrainConfig(**values)
    except TaskshareError as err:
        assert any(f"train.{k}" in str(err) for k in values)


def _write(tmp_path, x, y, **config):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cfg = {"source": {"npz": str(tmp_path / "d.npz")}, "target": {"npz": str(tmp_path / "d.npz")},
           "model": {"name": "mlp", "args": {"hidden": [4]}},
           "pretrain": {"train": {"epochs": 1, "min_steps": 0, "progress": False, "device": "cpu"}},
           "transfer": {"shots": [1], "strategies": ["linear_probe"],
                        "train": {"epochs": 1, "min_steps": 0, "progress": False, "device": "cpu"}},
           "output": str(tmp_path / "out"), **config}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def _plausible(x: np.ndarray, y: np.ndarray) -> bool:
    """What a run may accept at all: numeric, one label per input, whole non-negative class numbers."""
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf" or len(y) == 0 or len(x) != len(y) or x.ndim < 2:
        return False
    return bool(np.isfinite(y).all() and (y == np.round(y)).all() and (y >= 0).all())


ARRAYS = st.tuples(st.lists(st.sampled_from([0, 1, 2, 3, 0.5, -1, -2, 7, float("nan")]), min_size=0, max_size=40),
                   st.sampled_from([0, 0, 5, -5]), st.sampled_from(["float", "float", "object", "text", "flat"]))


def _arrays(spec):
    labels, extra, form = spec
    y = np.array(labels, dtype=np.float64)
    if len(y) and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    n = max(0, len(y) + extra)
    x = np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32)
    if form == "object":
        y = np.array([*y.tolist()], dtype=object)
    elif form == "text":
        y = y.astype(str)
    elif form == "flat":
        x = x[:, 0]
    return x, y


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=ARRAYS)
@pytest.mark.slow
def test_the_command_answers_any_data_file_with_a_result_or_one_line(tmp_path_factory, spec):
    tmp_path = tmp_path_factory.mktemp("hostile")
    x, y = _arrays(spec)
    path = _write(tmp_path, x, y)
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["run", str(path)])
    out = buffer.getvalue()
    assert status in (0, 2)
    if status == 2:
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and len(errors[0]) > 20, out
    else:
        assert _plausible(x, y), f"a run accepted {y.tolist()} for {x.shape}"
        assert (tmp_path / "out" / "results.json").exists()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=ARRAYS, epochs=CONFIG_VALUES)
@pytest.mark.slow
def test_the_command_as_a_subprocess_never_shows_a_traceback(tmp_path_factory, spec, epochs):
    tmp_path = tmp_path_factory.mktemp("hostile_cli")
    x, y = _arrays(spec)
    path = _write(tmp_path, x, y)
    cfg = yaml.safe_load(path.read_text())
    cfg["transfer"]["train"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "taskshare.cli", "run", str(path)], capture_output=True, text=True,
                          timeout=300)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode in (0, 2), done.stderr[-2000:]
    if done.returncode == 2:
        assert [line.startswith("error:") for line in done.stdout.splitlines()].count(True) == 1
    else:
        assert _plausible(x, y) and isinstance(epochs, int) and epochs >= 1
