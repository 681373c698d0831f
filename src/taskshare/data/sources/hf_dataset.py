"""`hf_dataset: DIR`: a Hugging Face `datasets` folder written by `save_to_disk` (a Dataset, or a
DatasetDict of which `split` is read). ClassLabel columns keep their names; text and feature
columns go through the same manifest rules as a CSV. An `Image` column (the first, or the one named
by `image`) makes an image source: its cells stay in the saved files, each fetched and decoded when
the DataLoader asks for it, converted and resized as image files are."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing
from .manifest import from_frame


@SOURCES.register("hf_dataset")
def hf_dataset(path: str | Path, split: str = "train", label: str | None = None, labels: list[str] | None = None,
               features: list[str] | None = None, categorical: list[str] = (), text: str = "text",
               encoding: dict | None = None, image: str | None = None, image_size=None, mode: str = "RGB",
               strict: bool = False, kind=None) -> SourceData:
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
    names = list(labels) if labels is not None else [label or "label"]
    class_names = {n: list(data.features[n].names) for n in names
                   if n in data.features and isinstance(data.features[n], datasets.ClassLabel)}
    images = [n for n, f in data.features.items() if isinstance(f, datasets.Image) and n not in names]
    if image is not None and image not in images:
        raise TaskshareError(f"{folder}: image = {image!r}, but its image columns are {images}")
    if images and features is None:
        return _images(data, folder, image or images[0], names, class_names, image_size, mode, strict)
    frame = data.remove_columns(images).to_pandas()   # an image column is not a table feature
    for n in class_names:   # ClassLabel cells are indices (-1: unknown); the manifest reads names
        frame[n] = [class_names[n][i] if i is not None and i >= 0 else None for i in frame[n]]
    return from_frame(frame, str(folder), folder, label, labels, features, categorical, text_column=text,
                      path_column="\0", class_names=class_names, encoding=encoding, kind=kind)


class StoredImage:
    """One image cell of a saved dataset: the memory-mapped table and a row, fetched undecoded by
    `open()` (in the DataLoader worker that decodes it); str() names it in logs and errors."""

    def __init__(self, table, column: str, row: int, origin: str):
        self.table, self.column, self.row, self.origin = table, column, row, origin

    def open(self):
        import io
        cell = self.table[self.row][self.column]
        if cell.get("bytes") is not None:
            return io.BytesIO(cell["bytes"])
        if cell.get("path"):      # a cell that refers to a file outside the folder
            return cell["path"]
        raise TaskshareError(f"{self} holds no image (neither bytes nor a path)")

    def __str__(self) -> str:
        return f"{self.origin}[{self.column}, row {self.row}]"

    __repr__ = __str__


def _images(data, folder: Path, column: str, names, class_names, image_size, mode, strict) -> SourceData:
    import datasets

    from .base import encode_labels
    from .image_folder import parse_size
    from .images import MODES, scan
    if mode not in MODES:
        raise TaskshareError(f"mode {mode!r}; expected one of {MODES}")
    missing = [n for n in names if n not in data.column_names]
    if missing:
        raise TaskshareError(f"{folder} has no label column {missing[0]!r}; its columns: {data.column_names}")
    # decode=False: rows give the stored bytes, so decoding happens in our reader, like image files
    table = data.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    cells = [StoredImage(table, column, i, str(folder)) for i in range(len(table))]
    good, bad = scan(cells, strict, f"images of {folder}")
    keep = np.array([c.row for c in good], np.int64)
    ys, classes = {}, {}
    for n in names:
        values = data[n]
        if n in class_names:     # ClassLabel cells are indices (-1: unknown)
            values = [class_names[n][i] if i is not None and i >= 0 else None for i in values]
        y, classes[n] = encode_labels(list(values), n, class_names.get(n))
        ys[n] = y[keep]
    return SourceData("image", good, ys, classes, {"size": parse_size(image_size), "mode": mode, "image_column": column},
                      str(folder), [str(c) for c in bad])
