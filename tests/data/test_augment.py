import pytest
import torch

from taskshare.data.augment import TRANSFORMS, build_augment, transform_names
from taskshare.errors import ConfigError


def test_presets_and_flip_switch():
    assert transform_names("none") == []
    assert transform_names("light") == ["light_crop", "horizontal_flip"]
    assert "horizontal_flip" not in transform_names({"preset": "standard", "flip": False})
    assert transform_names(["color_jitter"]) == ["color_jitter"]
    assert build_augment("none", (8, 8)) is None


def test_bad_specs_name_the_choices():
    with pytest.raises(ConfigError, match="none, light, standard|'none', 'light', 'standard'"):
        transform_names("heavy")
    with pytest.raises(Exception, match="unknown image transform 'rotate'"):
        transform_names(["rotate"])
    with pytest.raises(ConfigError, match="for images"):
        build_augment("light", None, "text")


def test_flip_mirrors_and_each_image_draws_its_own():
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 8).expand(3, 8, 8)          # dark left, light right
    batch = ramp.expand(64, 3, 8, 8).clone()
    out = build_augment(["horizontal_flip"], (8, 8))(batch)
    flipped = (out[:, 0, 0, 0] > 0.5)
    assert 10 < int(flipped.sum()) < 54                      # about half, drawn per image
    assert torch.allclose(out[flipped], batch[flipped].flip(-1))
    assert torch.equal(out[~flipped], batch[~flipped])


def test_standard_keeps_shape_and_range_grayscale_included():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 16, 16)
    out = build_augment("standard", (16, 16))(x)
    assert out.shape == (5, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x.expand(-1, 3, -1, -1))
    assert set(TRANSFORMS.names()) >= {"random_resized_crop", "horizontal_flip", "color_jitter"}
