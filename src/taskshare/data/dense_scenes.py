"""Dense multi-task scenes made locally from digit images: a canvas holding 1-3 digits and, per scene,

- seg (N, H, W): each inked pixel's digit class (intensity > `ink`; where digits overlap, the one drawn
  last); background and faint pixels carry -1, the ignore index (labelling the background made short
  runs collapse to predicting it);
- depth (N, H, W): a depth-like field, each pixel's distance to the nearest digit's centre in units of
  the canvas side;
- normals (N, 3, H, W): the unit normals of that depth field seen as a surface (slopes per canvas side),
  the third task of the NYUv2-style tables;
- count (N,): the number of digits minus one (classes 0-2), a per-image task.

Digits wider than half the canvas are shrunk by block averaging (MNIST's 28x28 to 14x14 on a 32x32
canvas), so several fit.
"""
from __future__ import annotations

import numpy as np


def make_dense_scenes(images: np.ndarray, labels: np.ndarray, n: int, canvas: int = 32, seed: int = 0,
                      ink: float = 0.3) -> dict[str, np.ndarray]:
    """Arrays x (N, 1, canvas, canvas) float32 in [0, 1] and the four tasks' labels (see above)."""
    images = np.asarray(images, np.float32)
    side = images.shape[-1]
    factor = 1
    while side // factor > canvas // 2 and side % (factor * 2) == 0:
        factor *= 2
    digit = side // factor
    small = images.reshape(-1, digit, factor, digit, factor).mean((2, 4))
    if small.max() > 1:              # 0-255 or 0-16 intensities
        small = small / small.max()
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, canvas, canvas), np.float32)
    seg = np.full((n, canvas, canvas), -1, np.int64)
    depth = np.full((n, canvas, canvas), np.inf, np.float32)
    count = np.zeros(n, np.int64)
    rows, cols = np.mgrid[0:canvas, 0:canvas]
    for i in range(n):
        k = int(rng.integers(1, 4))
        count[i] = k - 1
        for j in rng.choice(len(small), size=k, replace=False):
            r, c = rng.integers(0, canvas - digit + 1, size=2)
            patch = small[j]
            view = x[i, 0, r:r + digit, c:c + digit]
            np.maximum(view, patch, out=view)
            seg[i, r:r + digit, c:c + digit][patch > ink] = labels[j]
            centre = np.hypot(rows - (r + digit / 2), cols - (c + digit / 2)) / canvas
            depth[i] = np.minimum(depth[i], centre)
    dr, dc = np.gradient(depth * canvas, axis=(1, 2))      # slopes per pixel of a field in canvas units
    normals = np.stack([-dc, -dr, np.ones_like(depth)], 1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return {"x": x, "seg": seg, "depth": depth, "normals": normals.astype(np.float32), "count": count}
