"""The command looks a config's mode up in one registry: each mode module registers its runner, an
unknown mode is named with the registered ones, and a one-stage mode refuses pretrain/transfer."""
import yaml

from taskshare.cli import main
from taskshare.experiments import RUNNERS


def test_each_mode_module_registers_its_runner():
    assert sorted(RUNNERS.names()) == ["adapt", "multitask", "transfer"]
    assert all(RUNNERS.get(name).__module__ == f"taskshare.experiments.{name}" for name in RUNNERS.names())


def _said(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())


def test_an_unknown_mode_is_named_with_the_registered_ones(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"mode": "multitsk", "output": str(tmp_path / "out")}))
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    assert "unknown mode 'multitsk'; expected one of: adapt, multitask, transfer" in _said(capsys)
    assert not (tmp_path / "out").exists()


def test_one_stage_modes_refuse_pretrain_and_transfer(tmp_path, capsys):
    for mode, what in (("multitask", "a multi-task config"), ("adapt", "an adaptation config")):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"mode": mode, "output": str(tmp_path / "out")}))
        assert main(["pretrain", str(tmp_path / "c.yaml")]) == 2
        assert f"'taskshare pretrain' is for transfer configs; run {what} with 'taskshare run'" in _said(capsys)
    assert not (tmp_path / "out").exists()


def test_a_mode_config_is_checked_by_its_own_runner(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"mode": "adapt", "model": {"name": "cnn1d", "argz": {}},
                                                      "output": str(tmp_path / "out")}))
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    assert "config.model: unknown key 'argz'" in _said(capsys)
