"""The ground floor for files: JSON and text written atomically, tensors with their sidecar."""
import json
import os
from pathlib import Path

import pytest
import torch

from taskshare.io import atomic_write_json, atomic_write_text, load_tensors, read_meta, safe_name, save_tensors


def test_json_holds_what_json_cannot_spell_as_text_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out" / "results.json"
    atomic_write_json(path, {"folder": Path("a/b"), "n": 3})
    assert json.loads(path.read_text()) == {"folder": "a/b", "n": 3}

    def crash(*_):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "half")
    assert json.loads(path.read_text())["n"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]      # no temporary file left


def test_tensors_round_trip_with_the_meta_in_the_sidecar(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3)[:, 1:]}        # a non-contiguous view saves as its values
    path = save_tensors(tmp_path / "m", weights, {"format": "x", "classes": ["a", "b"]})
    assert path.name == "m.safetensors"
    assert torch.equal(load_tensors(path)["w"], torch.tensor([[1.0, 2.0], [4.0, 5.0]]))
    assert read_meta(path) == {"format": "x", "classes": ["a", "b"]}


def test_safe_name_keeps_one_path_component():
    assert safe_name("../runs/a b") == ".._runs_a_b"
    assert safe_name("lp_ft k=2") == "lp_ft_k=2"
    assert [safe_name(s) for s in ("", "///", ".", "..")] == ["_", "_", "_", "_"]
