import os
import pickle

import pytest
import torch
from torch import nn

from taskshare import TaskshareError
from taskshare.models import CNN1d
from taskshare.train import load_into, load_tensors, read_meta, save


def test_round_trip_with_sidecar(tmp_path):
    model = CNN1d(40, 5, channels=(4, 4))
    model.features[0][1].running_mean.fill_(0.5)
    path = save(tmp_path / "m", model, {"task": {"name": "a"}})
    assert path.suffix == ".safetensors" and read_meta(path)["task"] == {"name": "a"}
    other = CNN1d(40, 5, channels=(4, 4))
    load_into(other, path)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), k


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save(tmp_path / "m.safetensors", nn.Linear(3, 2))
    before = path.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save(path, nn.Linear(3, 2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_truncated_safetensors_is_a_clear_error(tmp_path):
    path = save(tmp_path / "m", nn.Linear(30, 20))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TaskshareError, match="truncated"):
        load_tensors(path)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_object_is_refused_never_run(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"w": Payload()}, f)
    with pytest.raises(TaskshareError, match="pickled objects are refused"):
        load_tensors(path)


def test_plain_torch_state_dict_loads(tmp_path):
    model = nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    other = load_into(nn.Linear(3, 2), tmp_path / "w.pth")
    assert torch.equal(other.weight, model.weight)


def test_checkpoint_of_another_model_names_the_mismatch(tmp_path):
    path = save(tmp_path / "m", nn.Linear(3, 2))
    with pytest.raises(TaskshareError, match=r"weight: saved \(2, 3\), model \(4, 3\)"):
        load_into(nn.Linear(3, 4), path)
    with pytest.raises(TaskshareError, match="missing from the checkpoint"):
        load_into(nn.Sequential(nn.Linear(3, 2)), path)
