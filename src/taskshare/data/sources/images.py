"""Image files decoded lazily: a Dataset whose __getitem__ opens, converts and resizes one file, so
DataLoader workers do the decoding and nothing is held decoded in memory; and the up-front scan that
finds unreadable files before training."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import TaskshareError
from .progress import RateLog

log = logging.getLogger("taskshare")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MODES = ("RGB", "L")


def require_pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise TaskshareError("image sources need Pillow: pip install 'taskshare[vision]'") from exc
    return Image


def to_mode(img, mode: str):
    """Any PIL image -> `mode`. Palette and alpha images are composited on white first, so a
    transparent background reads as white rather than as whatever colour the hidden pixels hold."""
    Image = require_pil()
    if img.mode in ("P", "PA", "LA", "RGBA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(mode)


def readable(image):
    """What PIL opens: a path as it is; an image stored inside another file (a `datasets` cell, which
    has an `open()` giving a file object) fetched only now, so nothing waits undecoded in memory."""
    return image if isinstance(image, (str, Path)) else image.open()


def decode(path, size: tuple[int, int], mode: str = "RGB") -> torch.Tensor:
    """One image file (or stored image, see `readable`) -> float tensor (C, H, W) in [0, 1], resized
    (bilinear) to `size` = (H, W)."""
    Image = require_pil()
    try:
        with Image.open(readable(path)) as img:
            img = to_mode(img, mode)
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise TaskshareError(f"image {path} could not be decoded ({exc})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class ImageFiles(Dataset):
    """(image, label) pairs from file paths; `targets` holds the labels, so splits and class counts
    never decode an image. loader_options tells make_loader how many decoding workers to start."""

    def __init__(self, paths: Sequence[str | Path], labels: np.ndarray | None, size: Sequence[int], mode: str = "RGB",
                 num_workers: int = 0):
        if mode not in MODES:
            raise TaskshareError(f"image mode {mode!r}; expected one of {MODES}")
        self.paths = [p if hasattr(p, "open") and not isinstance(p, Path) else str(p) for p in paths]
        labels = np.full(len(self.paths), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        if len(labels) != len(self.paths):
            raise TaskshareError(f"{len(self.paths)} images but {len(labels)} labels; expected one label per image")
        self.targets = torch.as_tensor(labels)
        self.size = (int(size[0]), int(size[1]))
        self.mode = mode
        self.loader_options = {"num_workers": int(num_workers)}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return decode(self.paths[index], self.size, self.mode), self.targets[index]


def scan(paths: Sequence[Path], strict: bool = False, what: str = "images") -> tuple[list[Path], list[Path]]:
    """Split `paths` into readable and unreadable files by opening each and checking its structure
    (PIL's verify: headers and chunk checksums, no pixel decoding), so a truncated or corrupt file
    is found before training. strict: the first bad file stops the run, named."""
    Image = require_pil()
    good, bad = [], []
    progress = RateLog(f"checking {what}", len(paths))
    for path in paths:
        try:
            with Image.open(readable(path)) as img:
                img.verify()
            good.append(path)
        except Exception as exc:  # PIL raises OSError, SyntaxError, struct errors and more on broken files
            if strict:
                raise TaskshareError(f"image {path} is unreadable ({type(exc).__name__}: {exc}); "
                                     f"strict: true stops at the first bad file") from None
            bad.append(path)
        progress.advance()
    progress.finish()
    if bad:
        log.warning("skipped %d unreadable image(s) of %d: %s%s", len(bad), len(paths),
                    ", ".join(str(p) for p in bad[:5]), " ..." if len(bad) > 5 else "")
    return good, bad
