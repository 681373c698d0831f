"""ModelSpec: one model spec for every mode, read from YAML and written back as it was read; a key no
model takes is named with the allowed ones."""
import pytest

from taskshare import ConfigError
from taskshare.config import from_dict, to_dict
from taskshare.experiments.adapt import AdaptExperiment
from taskshare.experiments.multitask import MultiTaskExperiment
from taskshare.experiments.own import OwnExperiment
from taskshare.experiments.specs import ModelSpec
from taskshare.experiments.transfer import ExperimentConfig


def test_a_built_in_and_a_pretrained_family_read_and_written_back():
    builtin = ModelSpec.from_config({"name": "cnn1d", "args": {"channels": [8]}})
    assert (builtin.name, builtin.args, builtin.family, builtin.label) == ("cnn1d", {"channels": [8]}, None, "cnn1d")
    assert builtin.to_config() == {"name": "cnn1d", "args": {"channels": [8]}}
    hub = ModelSpec.from_config({"hf": "models/minilm", "pooling": "cls"})
    assert (hub.name, hub.family, hub.label) == (None, "hf", "minilm")
    assert hub.to_config() == {"hf": "models/minilm", "pooling": "cls"}


@pytest.mark.parametrize("value, message", [
    ({"nme": "mlp"}, r"model: unknown key 'nme'; expected 'name' \(a built-in: mlp, .*cnn1d.*\) and optionally 'args', "
                     r"or a pretrained family \(torchvision, timm, hf\)"),
    ({"args": {}}, r"model: no model named; expected 'name'"),
    ({"name": 3}, r"model.name = 3; expected a string"),
    ({"name": "mlp", "args": [1]}, r"model.args = \[1\]; expected a mapping"),
    ({"timm": "x", "name": "mlp"}, r"model: .*not both"),
    ("mlp", r"model = 'mlp'; expected a mapping"),
])
def test_bad_model_specs_are_named(value, message):
    with pytest.raises(ConfigError, match=message):
        ModelSpec.from_config(value)


def test_a_bad_argument_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"model.args has 'hiden', which model 'mlp' does not take; allowed: hidden, "
                                          r"dropout"):
        ModelSpec("mlp", {"hiden": [8]}).check()
    net = ModelSpec("mlp", {"hidden": [8]}).build(5, 3)
    assert net[0][0].in_features == 5 and net[-1].out_features == 3


@pytest.mark.parametrize("config", [ExperimentConfig, MultiTaskExperiment, AdaptExperiment, OwnExperiment])
def test_every_mode_reads_its_model_through_the_one_spec(config):
    extra = {"target": {"image_folder": "photos"}, "source": {"image_folder": "a"}} if config is OwnExperiment else {}
    built = from_dict(config, {"model": {"name": "mlp", "args": {"hidden": [4]}}, **extra})
    assert isinstance(built.model, ModelSpec) and built.model.args == {"hidden": [4]}
    assert to_dict(built)["model"] == {"name": "mlp", "args": {"hidden": [4]}}
    with pytest.raises(ConfigError, match=r"config.model: unknown key 'argz'"):
        from_dict(config, {"model": {"name": "mlp", "argz": {}}, **extra})
