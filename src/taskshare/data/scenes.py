"""Digit scenes: canvases holding 1 to 4 real digits at random positions; task j asks whether digit
j is present (one binary task per digit), with a share of labels hidden as unknown (NaN).

Sources: sklearn's bundled 8x8 digits (no download) or MNIST images from an .npz file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TaskshareError


@dataclass
class Scenes:
    x: np.ndarray                 # (n, 1, H, W) float32 in [0, 1]
    labels: dict[str, np.ndarray]  # has_<d>: (n,) float32, 1 present, 0 absent, NaN unknown
    present: np.ndarray           # (n, 10) bool, the full truth (for reporting only)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """1,797 8x8 digits scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise TaskshareError("sklearn digits need scikit-learn: pip install 'taskshare[demo]'") from exc
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def mnist_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        if "images" not in f.files or "labels" not in f.files:
            raise TaskshareError(f"{path}: expected arrays 'images' and 'labels', found {f.files}")
        return (f["images"] / 255.0).astype(np.float32), f["labels"].astype(np.int64)


def make_scenes(images: np.ndarray, labels: np.ndarray, n: int, canvas: int, digits: list[int],
                max_per_scene: int = 4, missing: float = 0.3, seed: int = 0) -> Scenes:
    """n canvases of canvas x canvas pixels, each with 1..max_per_scene digits (pixel-wise max where
    they overlap); labels for the digits in `digits`, a `missing` share of them set to NaN."""
    if not 0 <= missing < 1:
        raise TaskshareError(f"missing share must be in [0, 1), got {missing!r}")
    h, w = images.shape[1:]
    if canvas < max(h, w):
        raise TaskshareError(f"canvas {canvas} is smaller than a digit ({h}x{w})")
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, canvas, canvas), np.float32)
    present = np.zeros((n, 10), bool)
    for i in range(n):
        for j in rng.choice(len(images), size=rng.integers(1, max_per_scene + 1), replace=False):
            r, c = rng.integers(0, canvas - h + 1), rng.integers(0, canvas - w + 1)
            np.maximum(x[i, 0, r:r + h, c:c + w], images[j], out=x[i, 0, r:r + h, c:c + w])
            present[i, labels[j]] = True
    out = {}
    for d in digits:
        y = present[:, d].astype(np.float32)
        y[rng.random(n) < missing] = np.nan
        out[f"has_{d}"] = y
    return Scenes(x, out, present)
