"""`hf_dataset: DIR`: a Hugging Face `datasets` folder written by `save_to_disk` (a Dataset, or a
DatasetDict of which `split` is read). ClassLabel columns keep their names; text and feature
columns go through the same manifest rules as a CSV."""
from __future__ import annotations

from pathlib import Path

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing
from .manifest import from_frame


@SOURCES.register("hf_dataset")
def hf_dataset(path: str | Path, split: str = "train", label: str | None = None, labels: list[str] | None = None,
               features: list[str] | None = None, categorical: list[str] = (), text: str = "text",
               encoding: dict | None = None) -> SourceData:
    folder = existing(path, "datasets folder")
    try:
        import datasets
    except ImportError as exc:
        raise TaskshareError("hf_dataset sources need the datasets package: pip install 'taskshare[hf_data]'") from exc
    try:
        data = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise TaskshareError(f"{folder} is not a folder written by datasets' save_to_disk ({exc})") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise TaskshareError(f"{folder} has splits {list(data)}; split {split!r} is not among them")
        data = data[split]
    if any(isinstance(f, datasets.Image) for f in data.features.values()):
        raise TaskshareError(f"{folder} has an image column; image datasets are read from an image folder or a "
                             f"CSV of paths (save the images as files first)")
    names = list(labels) if labels is not None else [label or "label"]
    class_names = {n: list(data.features[n].names) for n in names
                   if n in data.features and isinstance(data.features[n], datasets.ClassLabel)}
    frame = data.to_pandas()
    for n in class_names:   # ClassLabel cells are indices (-1: unknown); the manifest reads names
        frame[n] = [class_names[n][i] if i is not None and i >= 0 else None for i in frame[n]]
    return from_frame(frame, str(folder), folder, label, labels, features, categorical, text_column=text,
                      path_column="\0", class_names=class_names, encoding=encoding)
