"""Domain pairs and trunks for benchmarks/domain_adaptation.py (kept apart so tests and quick checks can
import them without running the grid).

Digit pairs: MNIST-10k split in two halves; the source half as it is, the target half shifted
(rotated, colour-inverted, or noisy and blurred). MNIST-1D: the package's default arguments against
harder ones (more shear, more correlated noise, another seed). Each domain: train / test arrays; the
source's train part is later split into train and validation."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAIRS = ("rot30", "rot45", "invert", "noise_blur", "mnist1d")
TRUNKS = ("bn", "plain")      # with BatchNorm, without (a LeNet-5-like trunk for digits)


def rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    """(n, 1, 28, 28) images rotated about their centre, bilinear, zeros outside."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=torch.float32)
    t = torch.as_tensor(x)
    grid = F.affine_grid(theta.expand(len(t), 2, 3), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, align_corners=False).numpy()


def noise_blur(x: np.ndarray, seed: int) -> np.ndarray:
    """A 3x3 box blur, then Gaussian noise (sd 0.3), clipped to [0, 1]."""
    t = F.avg_pool2d(torch.as_tensor(x), 3, stride=1, padding=1, count_include_pad=False)
    g = torch.Generator().manual_seed(seed)
    return (t + 0.3 * torch.randn(t.shape, generator=g)).clamp(0, 1).numpy()


def digit_pair(path: str, pair: str, seed: int, images: int):
    """((xs, ys, xs_test, ys_test), (xt, yt, xt_test, yt_test)) with `images` training images per domain
    and 1,000 test images per domain."""
    data = np.load(path)
    x = data["images"].astype(np.float32)[:, None] / 255.0
    y = data["labels"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    half = len(x) // 2
    xs, ys, xt, yt = x[:half], y[:half], x[half:], y[half:]
    if pair.startswith("rot"):
        xt = rotate(xt, float(pair[3:]))
    elif pair == "invert":
        xt = 1.0 - xt
    elif pair == "noise_blur":
        xt = noise_blur(xt, seed)
    else:
        raise ValueError(f"unknown digit pair {pair!r}; expected one of {PAIRS[:-1]}")
    n = min(images, half - 1000)
    return (xs[:n], ys[:n], xs[-1000:], ys[-1000:]), (xt[:n], yt[:n], xt[-1000:], yt[-1000:])


def mnist1d_pair(seed: int, images: int):
    from taskshare.data.mnist1d import generate
    total = int(images / 0.8) + 1250             # the package keeps 20% for its test split
    src = generate(total, seed=42)
    tgt = generate(total, seed=1000 + seed, shear_scale=1.2, corr_noise_scale=0.45)
    return ((src["x"][:images], src["y"][:images], src["x_test"][:1000], src["y_test"][:1000]),
            (tgt["x"][:images], tgt["y"][:images], tgt["x_test"][:1000], tgt["y_test"][:1000]))


def lenet(batch_norm: bool) -> tuple[nn.Module, int]:
    """LeNet-5-like: conv 6 -> pool -> conv 16 -> pool -> 120 -> 84 (the trunk's output)."""
    def norm(c, two_d=True):
        return [nn.BatchNorm2d(c) if two_d else nn.BatchNorm1d(c)] if batch_norm else []
    trunk = nn.Sequential(nn.Conv2d(1, 6, 5), *norm(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), *norm(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(256, 120), *norm(120, False), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
    return trunk, 84


def conv1d(batch_norm: bool) -> tuple[nn.Module, int]:
    from taskshare.models import build_model
    from taskshare.models.surgery import split_head
    net = build_model("cnn1d", 40, 10, batch_norm=batch_norm)
    trunk, head = split_head(net, example=torch.zeros(2, 40))
    return trunk, head.in_features


def make_model(pair: str, trunk: str, seed: int):
    from taskshare.models.trunk_head import TrunkHead
    torch.manual_seed(seed)
    body, width = conv1d(trunk == "bn") if pair == "mnist1d" else lenet(trunk == "bn")
    return TrunkHead(body, nn.Linear(width, 10))
