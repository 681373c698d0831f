import json

import numpy as np
import pytest
import torch

from taskshare.data import few_shot, labels_of, make_loader
from taskshare.data.sources import SOURCES, read_source
from taskshare.errors import ConfigError, TaskshareError

from .own_files import image_folder, table_csv, truncate, write_image


def test_every_reader_is_registered():
    assert set(SOURCES.names()) >= {"image_folder", "csv", "parquet", "jsonl", "hf_dataset", "npz"}


def test_image_folder_keeps_class_names_and_converts_every_mode(tmp_path):
    root = image_folder(tmp_path / "pics", per_class=8)
    data = read_source({"image_folder": str(root), "image_size": 16})
    assert data.kind == "image" and data.class_names == {"label": ["dark", "light"]}
    assert np.bincount(data.labels["label"]).tolist() == [8, 8]
    ds = data.dataset()
    shapes = {tuple(ds[i][0].shape) for i in range(len(ds))}
    assert shapes == {(3, 16, 16)}            # grayscale, RGBA and palette all became RGB at one size
    dark = [ds[i][0].mean().item() for i in range(len(ds)) if ds[i][1] == 0]
    light = [ds[i][0].mean().item() for i in range(len(ds)) if ds[i][1] == 1]
    assert max(dark) < 0.3 < 0.6 < min(light)  # the pixels are the file's, not zeros or noise


def test_transparent_pixels_read_as_white(tmp_path):
    from PIL import Image
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.save(tmp_path / "clear.png")
    from taskshare.data.sources import decode
    assert torch.allclose(decode(tmp_path / "clear.png", (4, 4)), torch.ones(3, 4, 4))


def test_image_labels_need_no_decoding_and_loaders_batch(tmp_path, monkeypatch):
    data = read_source({"image_folder": str(image_folder(tmp_path / "pics")), "image_size": 8})
    ds = data.dataset()
    splits = few_shot(ds, 3, seed=0)
    import taskshare.data.sources.images as images
    monkeypatch.setattr(images, "decode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    assert torch.bincount(labels_of(splits.train)).tolist() == [3, 3]
    monkeypatch.undo()
    x, y = next(iter(make_loader(splits.train, 4, shuffle=False)))
    assert x.shape == (4, 3, 8, 8) and y.dtype == torch.int64


def test_truncated_image_is_skipped_and_named(tmp_path, caplog):
    root = image_folder(tmp_path / "pics")
    bad = truncate(root / "dark" / "3.png")
    with caplog.at_level("WARNING", logger="taskshare"):
        data = read_source({"image_folder": str(root)})
    assert len(data) == 15 and data.skipped == [str(bad)]
    assert "skipped 1 unreadable image(s) of 16" in caplog.text and "3.png" in caplog.text
    with pytest.raises(TaskshareError, match=r"3\.png is unreadable.*strict"):
        read_source({"image_folder": str(root), "strict": True})


def test_csv_of_features_with_blank_labels(tmp_path):
    data = read_source({"csv": str(table_csv(tmp_path / "t.csv")), "labels": ["big", "shade"]})
    assert data.kind == "table" and data.class_names == {"big": ["no", "yes"], "shade": ["cool", "warm"]}
    assert (data.labels["shade"][1::2] == -1).all() and (data.labels["shade"][::2] >= 0).all()
    kinds = [c["type"] for c in data.encoding["columns"]]
    assert kinds == ["numeric", "numeric", "categorical"]
    assert data.inputs.shape == (80, 5)       # two standardised numbers + three colour indicators
    assert data.inputs[:, 2:].sum(1).tolist() == [1.0] * 80
    assert abs(data.inputs[:, 0].mean()) < 1e-5


def test_csv_of_image_paths_names_missing_files(tmp_path):
    write_image(tmp_path / "a.png", True, "RGB")
    (tmp_path / "m.csv").write_text("path,label\na.png,cat\nnope.png,dog\n")
    with pytest.raises(TaskshareError, match=r"row 3: .*nope\.png"):
        read_source({"csv": str(tmp_path / "m.csv")})
    (tmp_path / "m.csv").write_text("path,label\na.png,cat\na.png,dog\n")
    data = read_source({"csv": str(tmp_path / "m.csv"), "image_size": 5})
    assert data.kind == "image" and data.dataset()[1][0].shape == (3, 5, 5)


@pytest.mark.slow
def test_parquet_reads_like_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.read_csv(table_csv(tmp_path / "t.csv")).to_parquet(tmp_path / "t.parquet")
    a = read_source({"csv": str(tmp_path / "t.csv"), "label": "big"})
    b = read_source({"parquet": str(tmp_path / "t.parquet"), "label": "big"})
    assert np.allclose(a.inputs, b.inputs) and (a.labels["big"] == b.labels["big"]).all()


def test_jsonl_text_with_missing_labels(tmp_path):
    rows = [{"text": "good day", "mood": "up"}, {"text": "bad day", "mood": None}, {"text": "fine"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = read_source({"jsonl": str(tmp_path / "t.jsonl"), "label": "mood"})
    assert data.kind == "text" and data.inputs == ["good day", "bad day", "fine"]
    assert data.labels["mood"].tolist() == [0, -1, -1]
    with pytest.raises(TaskshareError, match="text model"):
        data.dataset()
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{oops\n')
    with pytest.raises(TaskshareError, match="line 2 is not JSON"):
        read_source({"jsonl": str(tmp_path / "bad.jsonl")})


@pytest.mark.slow
def test_hf_dataset_folder_keeps_classlabel_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [1, 0, 1]}, features=features)
    ds.save_to_disk(str(tmp_path / "saved"))
    data = read_source({"hf_dataset": str(tmp_path / "saved")})
    assert data.kind == "text" and data.class_names == {"label": ["neg", "pos"]}
    assert data.labels["label"].tolist() == [1, 0, 1]


def test_npz_as_today(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 3)), y=np.array([5, 7, 5, 7]))
    data = read_source({"npz": str(tmp_path / "d.npz")})
    assert data.class_names == {"label": ["5", "7"]} and data.labels["label"].tolist() == [0, 1, 0, 1]


def test_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="exactly one source"):
        read_source({"csv": "a.csv", "npz": "b.npz"})
    with pytest.raises(TaskshareError, match="does not exist"):
        read_source({"image_folder": str(tmp_path / "none")})
    (tmp_path / "t.csv").write_text("x,label\n1,a\n")
    with pytest.raises(ConfigError, match="takes the options"):
        read_source({"csv": str(tmp_path / "t.csv"), "colour": 1})
    with pytest.raises(TaskshareError, match="no label column 'kind'"):
        read_source({"csv": str(tmp_path / "t.csv"), "label": "kind"})


def test_decoding_in_worker_processes_gives_the_same_batches(tmp_path):
    data = read_source({"image_folder": str(image_folder(tmp_path / "pics", per_class=4)), "image_size": 8})
    inline = [x for x, _ in make_loader(data.dataset(), 4, shuffle=False)]
    loader = make_loader(data.dataset(num_workers=2), 4, shuffle=False)
    assert loader.num_workers == 2
    assert all(torch.equal(a, b) for a, b in zip(inline, (x for x, _ in loader)))


def test_pandas_missing_cells_are_blank_not_a_token(caplog):
    """A nullable Int64 or string column holds pd.NA where a cell is missing; str() made it the token
    '<NA>': a fourth class of a 0/1/2 label, a stray in a numeric feature, a category."""
    pd = pytest.importorskip("pandas")
    from pathlib import Path

    from taskshare.data.sources.base import is_blank
    from taskshare.data.sources.manifest import from_frame
    assert all(is_blank(v) for v in (None, float("nan"), np.float32("nan"), pd.NA, pd.NaT, " "))
    assert not any(is_blank(v) for v in (0, False, "a", np.int64(3)))
    n = 40
    frame = pd.DataFrame({"x": pd.array([i % 5 for i in range(n)], dtype="Int64"),
                          "colour": pd.array(["red", "blue"] * (n // 2), dtype="string"),
                          "y": pd.array([i % 3 for i in range(n)], dtype="Int64"),
                          "mood": pd.array(["up", "down"] * (n // 2), dtype="string")})
    frame.loc[0:3, ["x", "colour", "y", "mood"]] = pd.NA
    data = from_frame(frame, "t", Path("."), labels=["y", "mood"], features=["x", "colour"])
    assert data.class_names == {"y": ["0", "1", "2"], "mood": ["down", "up"]}
    assert (data.labels["y"][:4] == -1).all() and (data.labels["mood"][:4] == -1).all()
    assert (data.labels["y"][4:] >= 0).all()
    columns = {c["name"]: c for c in data.encoding["columns"]}
    assert columns["x"]["type"] == "numeric" and "unknown" not in columns["x"]
    assert columns["colour"]["categories"] == ["blue", "red"]
    assert "<NA>" not in caplog.text
