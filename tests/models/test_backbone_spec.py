import pytest
import torch

from taskshare.errors import ConfigError
from taskshare.models.backbones.spec import BACKBONES, build_backbone, family, preprocessing_of, restore_preprocessing

pytest.importorskip("timm")


def test_family_names_the_key_or_none_for_builtins():
    assert set(BACKBONES.names()) == {"torchvision", "timm", "hf"}
    assert family({"timm": "x"}) == "timm" and family({"name": "mlp"}) is None
    with pytest.raises(ConfigError, match="not both"):
        family({"timm": "x", "name": "mlp"})


def test_options_are_checked_and_named():
    with pytest.raises(ConfigError, match="model family timm: unknown key .weights.; allowed keys: pretrained, checkpoint, image_size"):
        build_backbone({"timm": "test_efficientnet", "weights": "DEFAULT"})


def test_preprocessing_is_recorded_and_restored():
    a = build_backbone({"timm": "test_efficientnet", "image_size": 24})
    record = preprocessing_of(a)
    assert record["size"] == [24, 24] and len(record["mean"]) == 3
    b = build_backbone({"timm": "test_efficientnet"}, pretrained=False)
    assert preprocessing_of(b)["size"] != [24, 24]
    restore_preprocessing(b, record)
    b.trunk.load_state_dict(a.trunk.state_dict())
    x = torch.rand(2, 3, 40, 40)
    assert torch.allclose(a.trunk.eval()(x), b.trunk.eval()(x), atol=1e-6)   # same resize, same statistics
