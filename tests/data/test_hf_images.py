"""A saved `datasets` folder whose column is a datasets.Image feature is read as images: the cells
stay in the saved files until a loader decodes them, converted and resized as image files are."""
import io

import numpy as np
import pytest
import torch

from taskshare.data import make_loader
from taskshare.data.sources import read_source
from taskshare.errors import TaskshareError

from .own_files import MODES


def picture(bright: bool, mode: str, size, seed: int):
    from PIL import Image
    rng = np.random.default_rng(seed)
    pixels = np.clip((200 if bright else 40) + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def saved_images(folder, per_class: int = 4, broken: int | None = None):
    """dark/light pictures in every colour mode and two sizes, saved with save_to_disk; row `broken`
    holds a truncated PNG."""
    datasets = pytest.importorskip("datasets")
    images, labels = [], []
    for c in (0, 1):
        for i in range(per_class):
            img = picture(bool(c), MODES[i % 4], (12, 10) if i % 2 else (9, 14), 10 * c + i)
            buffer = io.BytesIO()
            img.save(buffer, format="PNG")
            data = buffer.getvalue()
            if broken == len(images):
                data = data[: len(data) // 2]
            images.append({"bytes": data, "path": None})
            labels.append(c)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["dark", "light"])})
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).save_to_disk(str(folder))
    return folder


def test_image_column_is_read_as_images_decoded_lazily(tmp_path):
    data = read_source({"hf_dataset": str(saved_images(tmp_path / "saved")), "image_size": 16})
    assert data.kind == "image" and data.class_names == {"label": ["dark", "light"]}
    assert data.labels["label"].tolist() == [0] * 4 + [1] * 4
    assert data.encoding["size"] == (16, 16) and data.encoding["image_column"] == "image"
    ds = data.dataset()
    assert all(not isinstance(p, (bytes, torch.Tensor)) for p in ds.paths)   # nothing decoded up front
    assert {tuple(ds[i][0].shape) for i in range(len(ds))} == {(3, 16, 16)}   # L, RGBA, P became RGB, one size
    means = [ds[i][0].mean().item() for i in range(len(ds))]
    assert max(means[:4]) < 0.3 < 0.6 < min(means[4:])      # the stored pixels, not zeros or noise
    inline = [x for x, _ in make_loader(data.select(np.arange(1, 7)).dataset(), 3, shuffle=False)]
    workers = [x for x, _ in make_loader(data.select(np.arange(1, 7)).dataset(num_workers=1), 3, shuffle=False)]
    assert all(torch.equal(a, b) for a, b in zip(inline, workers)) and len(inline) == 2


def test_truncated_cell_is_skipped_and_named_or_stops_when_strict(tmp_path, caplog):
    folder = saved_images(tmp_path / "saved", broken=5)
    data = read_source({"hf_dataset": str(folder), "image_size": 8})
    assert len(data) == 7 and data.labels["label"].tolist() == [0] * 4 + [1] * 3
    assert data.skipped == [f"{folder}[image, row 5]"] and "row 5" in caplog.text
    with pytest.raises(TaskshareError, match="row 5.*unreadable"):
        read_source({"hf_dataset": str(folder), "strict": True})


def test_unknown_image_column_is_named(tmp_path):
    with pytest.raises(TaskshareError, match="image = 'photo'.*\\['image'\\]"):
        read_source({"hf_dataset": str(saved_images(tmp_path / "saved")), "image": "photo"})


@pytest.mark.slow
def test_taskshare_run_trains_on_a_saved_image_dataset(tmp_path):
    pytest.importorskip("timm")
    import json

    import yaml

    from taskshare.cli import main
    config = {"target": {"hf_dataset": str(saved_images(tmp_path / "saved", per_class=12))},
              "model": {"timm": "test_efficientnet", "image_size": 32}, "num_workers": 1, "output": str(tmp_path / "run"),
              "transfer": {"shots": ["all"], "strategies": ["linear_probe"],
                           "train": {"epochs": 2, "min_steps": 0, "batch_size": 8, "progress": False, "device": "cpu"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "c.yaml")]) == 0
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    probe = [r for r in rows if r["strategy"] == "linear_probe"]
    assert probe and probe[0]["test"]["accuracy"] == 1.0      # dark against light, read from the stored cells
