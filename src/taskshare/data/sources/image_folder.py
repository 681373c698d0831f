"""`image_folder: DIR`: one sub-folder per class (torchvision's ImageFolder layout); the sub-folder
names are the class names, sorted."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import TaskshareError
from .base import SOURCES, SourceData, existing
from .images import IMAGE_SUFFIXES, MODES, scan


def parse_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size):
        return (int(size[0]), int(size[1]))
    raise TaskshareError(f"image_size = {size!r}; expected a positive integer or [height, width]")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@SOURCES.register("image_folder")
def image_folder(path: str | Path, image_size: int | list[int] | None = None, mode: str = "RGB",
                 strict: bool = False, label: str = "label") -> SourceData:
    """Images under DIR/<class>/...; every image is resized to `image_size` when decoded (default:
    the model's input size, filled in by the experiment), converted to `mode` (RGB or L)."""
    root = existing(path, "image folder")
    if not root.is_dir():
        raise TaskshareError(f"image_folder {root} is not a folder; expected one sub-folder per class")
    if mode not in MODES:
        raise TaskshareError(f"mode {mode!r}; expected one of {MODES}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise TaskshareError(f"image_folder {root} has no sub-folders; expected one sub-folder per class "
                             f"(e.g. {root}/cat/1.png, {root}/dog/2.png)")
    paths, labels = [], []
    for i, name in enumerate(classes):
        files = list_images(root / name)
        paths += files
        labels += [i] * len(files)
    if not paths:
        raise TaskshareError(f"image_folder {root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its sub-folders")
    good, bad = scan(paths, strict, f"images in {root}")
    keep = set(map(str, good))
    y = np.array([c for p, c in zip(paths, labels) if str(p) in keep], np.int64)
    return SourceData("image", [str(p) for p in good], {label: y}, {label: classes},
                      {"size": parse_size(image_size), "mode": mode}, str(root), [str(p) for p in bad])
