import pytest

from taskshare import ConfigError
from taskshare.config import from_dict
from taskshare.experiments.transfer import ExperimentConfig, load_config


def test_unknown_key_names_key_and_allowed(tmp_path):
    with pytest.raises(ConfigError, match=r"config.transfer.train: unknown key 'epoch'; allowed keys: epochs"):
        from_dict(ExperimentConfig, {"transfer": {"train": {"epoch": 3}}})


def test_wrong_types_are_named():
    with pytest.raises(ConfigError, match=r"config.transfer.seeds\[1\] = 'x'; expected an integer"):
        from_dict(ExperimentConfig, {"transfer": {"seeds": [0, "x"]}})
    with pytest.raises(ConfigError, match=r"config.pretrain.train.lr = 'fast'; expected a number"):
        from_dict(ExperimentConfig, {"pretrain": {"train": {"lr": "fast"}}})
    with pytest.raises(ConfigError, match=r"shots has 0"):
        from_dict(ExperimentConfig, {"transfer": {"shots": [0]}})


def test_yaml_numbers_like_1e_3_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("transfer:\n  train: {lr: 1e-3, epochs: 2}\n")
    assert load_config(path).transfer.train.lr == 0.001


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
