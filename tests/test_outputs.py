"""The output-folder guard: nothing is written outside a run's own folder, nothing of the user's is
replaced, and every mode of the command goes through it."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskshare import TaskshareError
from taskshare.cli import main
from taskshare.experiments.outputs import MARKER, prepare_output


def test_new_and_empty_folders_are_created_and_marked(tmp_path):
    prepare_output(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / MARKER).is_file()
    (tmp_path / "empty").mkdir()
    prepare_output(tmp_path / "empty")
    assert (tmp_path / "empty" / MARKER).is_file()


def test_root_home_and_working_directory_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for folder, why in (("/", "root of the file system"), (str(tmp_path / "home"), "home folder"),
                        (".", "working directory"), ("~", "home folder")):
        with pytest.raises(TaskshareError, match=why):
            prepare_output(folder, overwrite=True)
    assert not (tmp_path / "home" / MARKER).exists() and not (tmp_path / "work" / MARKER).exists()


def test_an_existing_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(TaskshareError, match="is an existing file"):
        prepare_output(tmp_path / "f", overwrite=True)
    assert (tmp_path / "f").read_text() == "mine"


def test_a_folder_of_other_files_is_refused_and_overwrite_never_replaces_them(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TaskshareError, match="holds no taskshare run.*notes.txt"):
        prepare_output(tmp_path)
    prepare_output(tmp_path, overwrite=True)          # nothing of the user's carries a name a run writes
    assert (tmp_path / MARKER).exists() and (tmp_path / "notes.txt").read_text() == "mine"
    other = tmp_path / "project"
    other.mkdir()
    (other / "config.yaml").write_text("mine")        # a run would write config.yaml: refused even so
    with pytest.raises(TaskshareError, match="config.yaml"):
        prepare_output(other, overwrite=True)
    assert (other / "config.yaml").read_text() == "mine" and not (other / MARKER).exists()


def test_a_previous_run_needs_overwrite_or_resume_and_overwrite_removes_only_its_files(tmp_path):
    run = tmp_path / "run"
    prepare_output(run)
    (run / "results.json").write_text("{}")
    (run / "models").mkdir()
    (run / "models" / "m.safetensors").write_text("x")
    (run / "my_notes.md").write_text("keep")
    with pytest.raises(TaskshareError, match="--overwrite.*--resume"):
        prepare_output(run)
    prepare_output(run, resume=True)
    assert (run / "results.json").exists()
    prepare_output(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == sorted([MARKER, "my_notes.md"])


def test_overwrite_empties_a_sub_run_of_its_own_files_and_keeps_anything_else(tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    for folder in (run, other):
        prepare_output(folder)
        prepare_output(folder / "multitask_small_trunk")          # the demo's second regime
        (folder / "multitask_small_trunk" / "multitask_results.json").write_text("{}")
    (run / "multitask_small_trunk" / "mine.txt").write_text("keep")
    prepare_output(run, overwrite=True)
    assert sorted(p.name for p in (run / "multitask_small_trunk").iterdir()) == ["mine.txt"]
    prepare_output(other, overwrite=True)
    assert not (other / "multitask_small_trunk").exists()          # emptied, then removed
    prepare_output(other / "multitask_small_trunk")                # and a fresh run goes there again


def _config(tmp_path, output) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = (rng.normal(0, 2, (4, 6))[y] + rng.normal(size=(len(y), 6))).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cfg = {"source": {"npz": str(tmp_path / "d.npz"), "classes": [0, 1]},
           "target": {"npz": str(tmp_path / "d.npz"), "classes": [2, 3]},
           "model": {"name": "mlp", "args": {"hidden": [8]}},
           "pretrain": {"train": {"epochs": 1, "min_steps": 0, "progress": False}},
           "transfer": {"shots": [5], "strategies": ["linear_probe"],
                        "train": {"epochs": 1, "min_steps": 0, "progress": False}},
           "output": str(output)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_the_command_refuses_root_before_writing_anything(tmp_path, capsys):
    before = {p.name for p in Path("/").iterdir()}
    assert main(["run", str(_config(tmp_path, "/"))]) == 2
    assert "root of the file system" in " ".join(capsys.readouterr().out.split())
    assert {p.name for p in Path("/").iterdir()} == before


@pytest.mark.slow
def test_the_command_refuses_a_file_and_a_foreign_folder_and_reruns_with_overwrite(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    assert main(["run", str(_config(tmp_path, tmp_path / "taken"))]) == 2
    assert "is an existing file" in " ".join(capsys.readouterr().out.split())
    path = _config(tmp_path, tmp_path / "out")
    assert main(["run", str(path)]) == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert main(["run", str(path)]) == 2                               # a second run does not clobber the first
    assert "holds a previous taskshare run" in " ".join(capsys.readouterr().out.split())
    assert main(["run", str(path), "--overwrite"]) == 0
    again = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert [r["test"] for r in again] == [r["test"] for r in first]


@pytest.mark.parametrize("argv", [["demo", "--quick", "--out"], ["advise", "--quick", "--out"]])
def test_demo_and_advise_refuse_a_foreign_folder(tmp_path, capsys, argv):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(argv + [str(tmp_path)]) == 2
    assert "holds no taskshare run" in " ".join(capsys.readouterr().out.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("mode", ["multitask", "adapt"])
def test_multitask_and_adapt_configs_refuse_a_foreign_folder(tmp_path, capsys, mode):
    (tmp_path / "keep.txt").write_text("mine")
    cfg = {"mode": mode, "output": str(tmp_path)}
    if mode == "adapt":
        cfg["data"] = {"builtin": "mnist1d_shift"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    assert "holds no taskshare run" in " ".join(capsys.readouterr().out.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "keep.txt"]


def test_a_run_stopped_by_bad_input_can_be_run_again_but_a_users_config_is_kept(tmp_path):
    run = tmp_path / "run"
    prepare_output(run)
    (run / "config.yaml").write_text("written by the stopped run")
    prepare_output(run)                                   # nothing trained yet: no --overwrite needed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("the user's")
    with pytest.raises(TaskshareError, match="holds no taskshare run"):
        prepare_output(mine)
