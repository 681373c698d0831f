"""Property-based tests (hypothesis): no config and no task/label shape reaches a traceback without a
clear message; every failure is a TaskshareError naming what was wrong."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.config import from_dict

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=8), st.lists(st.integers(0, 5), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
TRAIN_KEYS = st.sampled_from(["epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup", "clip_grad", "patience",
                              "seed", "device", "amp", "nonfinite", "progress", "checkpoint_every", "resume",
                              "keep_checkpoints", "min_steps", "bogus_key"])
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@FAST
@given(st.dictionaries(TRAIN_KEYS, VALUES, max_size=5))
def test_train_config_from_any_mapping_is_valid_or_named(data):
    try:
        config = from_dict(TrainConfig, data, "train")
    except TaskshareError as err:
        assert "train" in str(err)
    else:
        assert isinstance(config, TrainConfig)


SECTIONS = ["mode", "data", "model", "multitask", "adapt", "task", "output", "source", "target", "pretrain", "transfer",
            "junk"]


@pytest.mark.slow
@FAST
@given(st.dictionaries(st.sampled_from(SECTIONS), VALUES, max_size=4))
def test_experiment_configs_from_any_mapping_are_valid_or_named(data):
    from taskshare.experiments.adapt import load_adapt
    from taskshare.experiments.transfer import ExperimentConfig
    from taskshare.experiments.multitask import load_multitask
    for load in (load_adapt, load_multitask, lambda d: from_dict(ExperimentConfig, d, "config")):
        try:
            config = load(dict(data))
        except TaskshareError as err:
            assert any(key in str(err) for key in SECTIONS), str(err)   # names the key it stopped at
        else:
            assert config is not None and "junk" not in data               # an unknown key never passes


LABELS = st.one_of(
    st.lists(st.integers(-3, 12), min_size=1, max_size=20).map(lambda v: np.array(v)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=20).map(
        lambda v: np.array(v, dtype=np.float32)),
    st.integers(1, 6).flatmap(lambda c: st.lists(st.lists(st.integers(-1, 1), min_size=c, max_size=c), min_size=1,
                                                 max_size=8)).map(lambda v: np.array(v)))


@pytest.mark.slow
@FAST
@given(kind=st.sampled_from(["multiclass", "binary", "multilabel", "regression", "ordinal"]),
       classes=st.one_of(st.none(), st.integers(-1, 12)), outputs=st.one_of(st.none(), st.integers(-1, 4)),
       labels=LABELS, width=st.integers(1, 12))
def test_tasks_and_labels_of_any_shape_work_or_are_named(kind, classes, outputs, labels, width):
    try:
        task = Task("t", kind, classes, outputs)
    except TaskshareError as err:
        assert "'t'" in str(err) or "kind" in str(err)
        return
    y = torch.as_tensor(labels)
    try:
        task.check_labels(y, "training data")
        loss = task.loss(torch.randn(len(y), width), task.prepare_target(y))
    except TaskshareError as err:
        assert "'t'" in str(err)
        return
    assert loss.dim() == 0


@pytest.mark.parametrize("bad", [{"epochs": "ten"}, {"lr": -1}, {"unknown": 1}, {"batch_size": 0}])
def test_bad_train_values_name_the_field(bad):
    with pytest.raises(TaskshareError, match=list(bad)[0]):
        from_dict(TrainConfig, bad, "train")
