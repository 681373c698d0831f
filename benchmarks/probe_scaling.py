"""The convex probe's scaling default on feature sets it was not chosen on: scale="auto" (below as many
training rows as features, one common spread and per-feature standardisation both solved and the
better on validation kept; per feature from there on) against the defaults before it (per-feature
standardisation, C by the best validation accuracy), the common spread alone, and scikit-learn's
StandardScaler + LogisticRegression with C by validation accuracy over the same grid. Writes its table
into BENCHMARKS.md.

    python benchmarks/probe_scaling.py                          # every set, k 5/10/20/100, 10 seeds
    python benchmarks/probe_scaling.py --sets digits_pixels breast_cancer --no-write

Sets: sklearn digits as raw pixels; breast-cancer raw columns (binary, units differing by orders of
magnitude); ImageNet MobileNetV2 features of sklearn digits (upsampled) with the digit as target, with
"digit >= 5" as target, and with ten columns multiplied by 30 (columns in other units); a small CNN
pretrained on digits 0-4 of sklearn digits, probed on 5-9; the MNIST-1D MLP trunk of
probe_vs_sklearn.py (pretrained on digits 0-4, probed on 5-9). Per class, k examples train, another k
validate and the rest test; a k is skipped where a class has no more than 2k examples. Features are
computed once per set, and every method of a (k, seed) sees the same split.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402
from probe_vs_sklearn import OLD_DEFAULTS, _features, mnist1d_part, sklearn_tuned  # noqa: E402

from taskshare import Task  # noqa: E402
from taskshare.transfer.convex_probe import DEFAULT_GRID, ConvexProbeConfig, solve_probe  # noqa: E402

METHODS = {"default": ConvexProbeConfig(), "old": OLD_DEFAULTS, "global": ConvexProbeConfig(scale="global")}


# ---- feature sets: each returns (features, labels, note) -------------------------------------------
def _digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.data.astype(np.float32), d.target.astype(np.int64)


def digits_pixels(cache):
    _, x, y = _digits()
    return x, y, "1,797 images, 64 pixel values 0-16 (several always 0)"


def breast_cancer(cache):
    from sklearn.datasets import load_breast_cancer
    d = load_breast_cancer()
    spreads = d.data.std(0)
    return (d.data.astype(np.float32), d.target.astype(np.int64),
            f"569 rows, column spreads {spreads.min():.3g} to {spreads.max():.3g}")


def _mobilenet_digits(cache, image_size):
    if "mnv2" not in cache:   # one extraction shared by the three MobileNetV2 sets
        from backbones import weights_path
        from taskshare.models.backbones import torchvision_backbone
        images, _, y = _digits()
        bb = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=image_size)
        t0 = time.perf_counter()
        cache["mnv2"] = (_features(bb.with_head(Task("digit", num_classes=10)).trunk, images), y,
                         time.perf_counter() - t0)
    return cache["mnv2"]


def mobilenet_digits(cache, image_size):
    x, y, s = _mobilenet_digits(cache, image_size)
    return x, y, f"8x8 digits upsampled to {image_size}px, features in {s:.0f} s"


def mobilenet_binary(cache, image_size):
    x, y, _ = _mobilenet_digits(cache, image_size)
    return x, (y >= 5).astype(np.int64), "the same features, target digit >= 5"


def mobilenet_units(cache, image_size, columns=10, factor=30.0):
    x, y, _ = _mobilenet_digits(cache, image_size)
    x = x.copy()
    picked = np.random.default_rng(0).choice(x.shape[1], columns, replace=False)
    x[:, picked] *= factor   # as if a few columns came in other units, or from another trunk
    return x, y, f"the same features, {columns} columns (drawn with seed 0) multiplied by {factor:g}"


def cnn_digits(cache, epochs=15):
    """A small CNN trained on digits 0-4 (all of their images), its 256 pooled activations taken on 5-9."""
    images, _, y = _digits()
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    head = nn.Linear(256, 5)
    x = torch.as_tensor(images)[:, None]
    src = torch.as_tensor(y < 5)
    xs, ys = x[src], torch.as_tensor(y)[src]
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=2e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(ys)).split(64):
            loss = nn.functional.cross_entropy(head(trunk(xs[batch])), ys[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        train_acc = float((head(trunk(xs)).argmax(1) == ys).float().mean())
        feats = trunk(x[~src]).numpy()
    return feats, y[~src.numpy()] - 5, f"{epochs} epochs on digits 0-4 (training accuracy {100 * train_acc:.1f}%)"


def mnist1d_mlp(cache, pretrain_epochs):
    x, y, xt, yt, note = mnist1d_part("mlp", pretrain_epochs)
    return np.concatenate([x, xt]), np.concatenate([y, yt]), note   # one pool: the split below draws from it


SETS = {"digits_pixels": ("digits, raw pixels", digits_pixels),
        "breast_cancer": ("breast cancer, raw columns (binary)", breast_cancer),
        "mobilenet_digits": ("MobileNetV2 on digits", mobilenet_digits),
        "mobilenet_binary": ("MobileNetV2 on digits, >= 5 (binary)", mobilenet_binary),
        "mobilenet_units": ("MobileNetV2 on digits, 10 columns x30", mobilenet_units),
        "cnn_digits": ("CNN digits 0-4, probed on 5-9", cnn_digits),
        "mnist1d_mlp": ("MNIST-1D MLP, probed on 5-9", mnist1d_mlp)}


# ---- one split, four fits -------------------------------------------------------------------------
def split(y, k, seed):
    """Per class: k training rows, the next k validation rows, the rest test."""
    rng = np.random.default_rng(seed)
    parts = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for part, rows in zip(parts, (idx[:k], idx[k:2 * k], idx[2 * k:])):
            part.append(rows)
    return [np.concatenate(p) for p in parts]


def _accuracy(out: np.ndarray, y: np.ndarray) -> float:
    pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > 0).astype(np.int64)
    return float((pred == y).mean())


def fit_all(task, x, y, tr, va, te):
    row = {}
    args = [torch.as_tensor(a) for a in (x[tr], y[tr], x[va], y[va])]
    for name, config in METHODS.items():
        sol = solve_probe(task, *args, config=config)
        with torch.no_grad():
            row[name] = _accuracy(sol.head(torch.as_tensor(x[te])).numpy(), y[te])
        row[f"{name}_scale"] = sol.scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # lbfgs at the weakest penalties on separable rows
        row["sk"], *_ = sklearn_tuned((x[tr], y[tr]), (x[va], y[va]), (x[te], y[te]))
    return row


def run_set(label, x, y, shots, seeds):
    binary = len(np.unique(y)) == 2
    task = Task(label, kind="binary") if binary else Task(label, num_classes=int(y.max()) + 1)
    rows, counts = [], np.bincount(y)
    for k in shots:
        if counts.min() <= 2 * k:
            print(f"{label} k={k}: skipped (smallest class has {counts.min()} rows)", flush=True)
            continue
        for seed in seeds:
            tr, va, te = split(y, k, seed)
            row = {"set": label, "d": x.shape[1], "k": k, "seed": seed, "n": len(tr), **fit_all(task, x, y, tr, va, te)}
            rows.append(row)
            print(f"{label} k={k} seed={seed}: default {100 * row['default']:.1f} ({row['default_scale']}) "
                  f"old {100 * row['old']:.1f} global {100 * row['global']:.1f} sklearn {100 * row['sk']:.1f}", flush=True)
    return rows


# ---- the section ----------------------------------------------------------------------------------
def _summary(settings, method, which) -> str:
    if not settings:
        return f"{method} - old, {which}: no setting"
    means = [(statistics.mean(s[method]), s["name"]) for s in settings]
    seeds = [(min(s[method]), s["name"]) for s in settings]
    worst, worst_seed = min(means), min(seeds)
    return (f"{method} - old, {which} ({len(settings)} settings): mean {statistics.mean(m for m, _ in means):+.2f} "
            f"points, worst setting {worst[0]:+.2f} ({worst[1]}), worst single seed {worst_seed[0]:+.1f} "
            f"({worst_seed[1]}); below -0.5 in {sum(m < -0.5 for m, _ in means)}, above +0.5 in "
            f"{sum(m > 0.5 for m, _ in means)}")


def table(rows, notes) -> list[str]:
    lines = ["| features (d) | k | train rows | default | old defaults | global alone | scikit-learn | "
             "default - old | worst seed | global - old | worst seed | default kept global |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    settings = []
    for key in dict.fromkeys((r["set"], r["k"]) for r in rows):
        rs = [r for r in rows if (r["set"], r["k"]) == key]
        mean = {m: 100 * statistics.mean(r[m] for r in rs) for m in ("default", "old", "global", "sk")}
        diff = {m: [100 * (r[m] - r["old"]) for r in rs] for m in ("default", "global")}
        n, d = rs[0]["n"], rs[0]["d"]
        below = n < d
        settings.append({"name": f"{key[0]} k={key[1]}", "below": below, **diff})
        kept = f"{sum(r['default_scale'] == 'global' for r in rs)}/{len(rs)}" if below else "- (per feature)"
        lines.append(f"| {key[0]} ({d}) | {key[1]} | {n}{' < d' if below else ''} | {mean['default']:.1f} | "
                     f"{mean['old']:.1f} | {mean['global']:.1f} | {mean['sk']:.1f} | "
                     f"{statistics.mean(diff['default']):+.2f} | {min(diff['default']):+.1f} | "
                     f"{statistics.mean(diff['global']):+.2f} | {min(diff['global']):+.1f} | {kept} |")
    below = [s for s in settings if s["below"]]
    lines += ["", *(f"- {_summary(group, m, which)}" for m in ("default", "global")
                    for group, which in ((settings, "all settings"), (below, "below as many rows as features")))]
    lines += ["", "Features: " + "; ".join(f"{k}: {v}" for k, v in notes.items()) + "."]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20, 100])
    p.add_argument("--image-size", type=int, default=64, help="MobileNetV2 input size")
    p.add_argument("--pretrain-epochs", type=int, default=20, help="MNIST-1D MLP source training")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started, rows, notes, cache = time.perf_counter(), [], {}, {}
    extra = {"mobilenet_digits": (args.image_size,), "mobilenet_binary": (args.image_size,),
             "mobilenet_units": (args.image_size,), "mnist1d_mlp": (args.pretrain_epochs,)}
    for name in args.sets:
        label, build = SETS[name]
        x, y, note = build(cache, *extra.get(name, ()))
        notes[label] = f"{note}, {x.shape[1]} features"
        rows += run_set(label, x.astype(np.float32), y, args.shots, args.seeds)
    command = ("python benchmarks/probe_scaling.py " + " ".join(a for a in sys.argv[1:] if a != "--no-write")).strip()
    text = "\n".join([
        f"`{command}`: {time.perf_counter() - started:.0f} s in all on {machine()}.", "",
        "### The probe's scaling on feature sets it was not chosen on", "",
        f"Test accuracy (%), mean over seeds {args.seeds}; k labels per class train, another k validate, the rest "
        f"test (a k is left out where a class has no more than 2k rows). 'default': ConvexProbeConfig() "
        f"(scale='auto', select='se_band'); 'old defaults': scale='feature', select='best'; 'global alone': "
        f"scale='global' (se_band); scikit-learn: StandardScaler + LogisticRegression, C by validation accuracy "
        f"(ties to the lower log-loss) over the same {len(DEFAULT_GRID)} values. Differences in points, the "
        f"mean over seeds and the worst seed; 'default kept global': the seeds where the default, below as many "
        f"training rows as features (d), kept the common spread on validation. Binary sets choose C and the "
        f"scaling by validation AUROC (the task's main metric) and report test accuracy at logit 0.", "",
        *table(rows, notes)])
    if not args.no_write:
        write_section("probe_scaling", text)
    print(text)


if __name__ == "__main__":
    main()
