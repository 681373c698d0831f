"""The transfer suite: source -> target pairs of different kinds, every strategy, scratch and `auto`,
several label budgets and seeds; auto's regret (points below the best fixed strategy, chosen after
the fact on test) and its margin over scratch. Writes the section `transfer_suite` of BENCHMARKS.md.

    python benchmarks/transfer_suite.py                                  # the full suite: hours on a CPU
    python benchmarks/transfer_suite.py --seeds 0 --shots 5 20 --pairs m1d_odd img_rotated
    python benchmarks/transfer_suite.py --pairs img_noisy --strategies finetune --out ft.json --no-write
    python benchmarks/transfer_suite.py --report-from a.json b.json ft.json   # later files' rows win

Pairs (all data offline: MNIST-1D generated locally, the shared MNIST-10k sample, sklearn's digits):
  m1d_odd         MNIST-1D even digits -> odd digits (the demo uses 0-4 -> 5-9)
  m1d_shuffled    MNIST-1D even digits with shuffled labels -> odd digits (a source that should not help)
  m1d_permuted    MNIST-1D, all digits, time steps permuted -> odd digits in order (should hurt)
  img_split       MNIST 0-4 -> 5-9 (14x14 images, an MLP)
  img_rotated     MNIST 0-9 -> 0-9 rotated by 90 degrees
  img_inverted    MNIST 0-9 -> 0-9 with inverted intensities
  img_noisy       MNIST 0-9 -> 0-9 with heavy Gaussian noise
  img_permuted    MNIST 0-9 with a fixed pixel permutation -> 0-9 in order (should hurt)
  mnist_to_sklearn  MNIST 0-9 at 8x8 -> sklearn's 8x8 digits (another data set)
  minilm_topics     all-MiniLM-L6-v2 -> 240 topic sentences, 4 classes (a pretrained source; not run by default)
  mobilenet_digits  ImageNet MobileNetV2 -> MNIST digits at 32x32 (a pretrained source; not run by default)
The two pretrained pairs (benchmarks/suite_pretrained.py) run under their own reduced budget, stated
in the report; k where their data allow it (text: 5, 20, all; digits: 5, 20, 100).
Source and target never share an example. Each target's test split is untouched until the end;
k labels per class train and another k validate ("all": every target example, 10% held out).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, publish  # noqa: E402

from taskshare import Task, TrainConfig, fit, transfer_model  # noqa: E402
from taskshare.data import few_shot, split, stratified_indices  # noqa: E402
from taskshare.data.mnist1d import generate, select_classes  # noqa: E402
from taskshare.data.scenes import mnist_npz  # noqa: E402
from taskshare.models import build_model  # noqa: E402
from taskshare.transfer import run_strategy  # noqa: E402
from suite_pretrained import BUDGETS, PAIRS as PRETRAINED  # noqa: E402

STRATEGIES = ["scratch", "linear_probe", {"name": "last_k", "k": 1}, "finetune",
              {"name": "finetune", "trunk_lr_scale": 1.0}, "layer_decay", "gradual_unfreeze", "lp_ft", "l2_sp", "auto"]
MNIST = ROOT.parent / "shared" / "data" / "mnist10k.npz"


def _pool(images: np.ndarray, size: int) -> np.ndarray:
    t = torch.as_tensor(images).unsqueeze(1)
    return torch.nn.functional.adaptive_avg_pool2d(t, size).reshape(len(images), -1).numpy()


def _m1d_pairs() -> dict:
    data = generate(num_samples=12_000, seed=7)
    other = generate(num_samples=12_000, seed=8)        # a second draw: the permuted source's own signals
    even, odd = select_classes(data, [0, 2, 4, 6, 8]), select_classes(data, [1, 3, 5, 7, 9])
    rng = np.random.default_rng(0)
    shuffled = (even.x, rng.permutation(even.y))
    perm = rng.permutation(40)
    target = ((odd.x, odd.y), (odd.x_test, odd.y_test))
    return {"m1d_odd": ((even.x, even.y), target, 5),
            "m1d_shuffled": (shuffled, target, 5),
            "m1d_permuted": ((other["x"][:, perm], other["y"]), target, 10)}


def _img_pairs() -> dict:
    images, labels = mnist_npz(str(MNIST))
    src_idx, tgt_idx = stratified_indices(labels, 0.5, seed=0)        # no image in both
    small = _pool(images, 14)
    xs, ys, xt, yt = small[src_idx], labels[src_idx], small[tgt_idx], labels[tgt_idx]
    rng = np.random.default_rng(1)
    rest, test = stratified_indices(yt, 0.3, seed=1)

    def target(x, y=yt):
        return (x[rest], y[rest]), (x[test], y[test])

    def digits(x, y, keep):
        lookup = {d: i for i, d in enumerate(keep)}
        m = np.isin(y, keep)
        return x[m], np.array([lookup[v] for v in y[m]])

    lo_x, lo_y = digits(xs, ys, [0, 1, 2, 3, 4])
    hi_x, hi_y = digits(xt, yt, [5, 6, 7, 8, 9])
    hi_rest, hi_test = stratified_indices(hi_y, 0.3, seed=1)
    rotated = np.rot90(xt.reshape(-1, 14, 14), 1, axes=(1, 2)).reshape(len(xt), -1).copy()
    noisy = (xt + rng.normal(0, 0.6, xt.shape)).astype(np.float32)
    perm = rng.permutation(196)
    from sklearn.datasets import load_digits
    sk = load_digits()
    sk_x, sk_y = (sk.data / 16.0).astype(np.float32), sk.target.astype(np.int64)
    sk_rest, sk_test = stratified_indices(sk_y, 0.3, seed=1)
    mnist8 = _pool(images[src_idx], 8)
    mnist8 = mnist8 / mnist8.max(axis=1, keepdims=True).clip(1e-6)   # sklearn's digits fill their 0-16 range
    return {"img_split": ((lo_x, lo_y), ((hi_x[hi_rest], hi_y[hi_rest]), (hi_x[hi_test], hi_y[hi_test])), 5),
            "img_rotated": ((xs, ys), target(rotated), 10),
            "img_inverted": ((xs, ys), target(1.0 - xt), 10),
            "img_noisy": ((xs, ys), target(noisy), 10),
            "img_permuted": ((xs[:, perm], ys), target(xt), 10),
            "mnist_to_sklearn": ((mnist8, ys), ((sk_x[sk_rest], sk_y[sk_rest]), (sk_x[sk_test], sk_y[sk_test])), 10)}


def pairs(names: list[str]) -> dict:
    out = {}
    if any(n.startswith("m1d") for n in names):
        out.update(_m1d_pairs())
    if any(not n.startswith("m1d") and n not in PRETRAINED for n in names):
        out.update(_img_pairs())
    out.update({n: PRETRAINED[n] for n in names if n in PRETRAINED})   # built when their turn comes
    unknown = sorted(set(names) - set(out))
    if unknown:
        raise SystemExit(f"unknown pairs {unknown}; expected some of {sorted(out)}")
    return {n: out[n] for n in names}


def source_model(source, classes_src: int, hidden: list[int], config: TrainConfig):
    x, y = source
    classes = int(y.max()) + 1
    torch.manual_seed(0)
    net = build_model("mlp", in_features=x.shape[1], num_outputs=classes, hidden=hidden)
    s = split((x, y), val_fraction=0.1, seed=0)
    fit(net, Task("source", num_classes=classes), s.train, s.val, config)
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["m1d_odd", "m1d_shuffled", "m1d_permuted", "img_split",
                                                       "img_rotated", "img_inverted", "img_noisy", "img_permuted",
                                                       "mnist_to_sklearn"])
    parser.add_argument("--shots", nargs="+", default=["5", "20", "100", "all"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--epochs", type=int, default=None, help="the transfer runs' epoch cap (default: TrainConfig's)")
    parser.add_argument("--source-epochs", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "transfer_suite.json")
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    parser.add_argument("--strategies", nargs="+", default=None,
                        help="run only these (names as in the table, e.g. finetune auto): to re-run what changed")
    parser.add_argument("--report-from", type=Path, nargs="+", default=None,
                        help="rewrite the section from saved runs' JSON (several: runs of different pairs, merged; "
                             "a later file's row replaces an earlier one of the same pair, k, seed and strategy)")
    parser.add_argument("--minutes", type=float, default=None, help="with --report-from: that run's wall time")
    parser.add_argument("--note", default=None, help="with --report-from: a closing line on how the saved run was made")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.report_from is not None:
        rows = list(merged(json.loads(path.read_text()) for path in args.report_from).values())
        _emit(report(rows, args, (args.minutes or 0) * 60) + (["", args.note] if args.note else []), args)
        return
    shots = [s if s == "all" else int(s) for s in args.shots]
    started = time.perf_counter()
    base = TrainConfig(progress=False)
    if args.epochs:
        base = replace(base, epochs=args.epochs)
    rows, skipped = [], []
    chosen = [s for s in STRATEGIES if args.strategies is None or label_of(s) in args.strategies]
    for name, spec in pairs(args.pairs).items():
        t0 = time.perf_counter()
        if name in PRETRAINED:
            made = spec()
            target, test, source_size, config = made.target, made.test, None, replace(base, **made.train)
            task = Task(name, num_classes=int(target[1].max()) + 1)
            pretrained = made.model(task)
        else:
            source, (target, test), classes = spec
            source_size, config = len(source[1]), base
            net = source_model(source, classes, args.hidden, replace(TrainConfig(progress=False), epochs=args.source_epochs))
            task = Task(name, num_classes=int(target[1].max()) + 1)
        for shot in shots:
            if name in PRETRAINED and str(shot) not in made.shots:
                skipped.append(f"{name} k={shot} (outside its reduced budget)")
                continue
            if shot != "all" and np.bincount(target[1]).min() < 2 * shot:
                skipped.append(f"{name} k={shot} (a class has {np.bincount(target[1]).min()} examples, fewer than 2k)")
                continue
            for seed in args.seeds:
                splits = few_shot(target, shot, seed=seed, test=test)
                pre = pretrained if name in PRETRAINED else transfer_model(net, task, example=torch.as_tensor(target[0][:2]))
                for strategy in chosen:
                    _, r = run_strategy(pre, task, splits, strategy, replace(config, seed=seed), source_size,
                                        labels_per_class=shot)
                    rows.append({"pair": name, "k": str(shot), "seed": seed, "strategy": r.strategy,
                                 "accuracy": r.test["accuracy"] * 100, "seconds": r.seconds, "steps": r.steps,
                                 "note": r.note})
                print(f"{name} k={shot} seed={seed}: " + ", ".join(
                    f"{x['strategy'].split(' -> ')[-1] if not x['strategy'].startswith('auto') else x['strategy']} "
                    f"{x['accuracy']:.1f}" for x in rows[-len(chosen):]), flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(rows, indent=1))   # after every cell: a crash or a stop keeps what ran
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    if not {"auto", "scratch", "finetune(trunk_lr_scale=1.0)"} <= {label_of(s) for s in chosen}:
        print(f"rows saved to {args.out}; a part without auto, scratch and the full-rate finetune is "
              f"reported only merged with others (--report-from)")
        return
    lines = report(rows, args, time.perf_counter() - started)
    if skipped:
        lines += ["", "Not run (too few target examples): " + "; ".join(skipped) + "."]
    _emit(lines, args)


def _emit(lines: list[str], args) -> None:
    """The section: printed with --no-write, else written into BENCHMARKS.md."""
    if args.no_write:
        print("\n".join(lines))
    else:
        publish("transfer_suite", lines)


def label_of(spec) -> str:
    """A strategy's label in the rows and the table (auto's rows add ' -> its choice')."""
    if isinstance(spec, str):
        return spec
    return "last_k(k=1)" if spec["name"] == "last_k" else "finetune(trunk_lr_scale=1.0)"


def merged(parts) -> dict:
    """Rows of several runs keyed by pair, k, seed and strategy; a later run's row replaces an earlier
    one's (a cell re-run after a change supersedes the old result, the rest is kept)."""
    out = {}
    for rows in parts:
        for r in rows:
            out[(r["pair"], r["k"], r["seed"], r["strategy"].split(" -> ")[0])] = r
    return out


def report(rows: list[dict], args, seconds: float) -> list[str]:
    cell = defaultdict(list)
    secs = defaultdict(list)
    chosen = defaultdict(list)
    for r in rows:
        label = r["strategy"].split(" -> ")[0]
        cell[(r["pair"], r["k"], label)].append(r["accuracy"])
        secs[(r["pair"], r["k"], label)].append(r["seconds"])
        if label == "auto":
            chosen[(r["pair"], r["k"])].append(r["strategy"].split(" -> ")[-1])
    mean = {key: statistics.mean(v) for key, v in cell.items()}
    fixed = [label_of(s) for s in STRATEGIES if s != "auto"]
    lines = [f"Pairs {', '.join(args.pairs)}; k = {', '.join(args.shots)} labels per class (train, and as many "
             f"validate); seeds {args.seeds}; MLP trunks {args.hidden}; source models {args.source_epochs} epochs "
             f"at most; transfer runs with the default `TrainConfig`"
             f"{f' but an epoch cap of {args.epochs}' if args.epochs else ''}. {device_line()}; "
             f"{seconds / 60:.0f} minutes.", "",
             "| pair | k | scratch | best fixed strategy | auto (its choices) | regret | auto - scratch | auto cost / full-rate finetune |",
             "|---|---|---|---|---|---|---|---|"]
    regrets, margins, costs = [], [], []
    for pair in dict.fromkeys(r["pair"] for r in rows):
        for k in dict.fromkeys(r["k"] for r in rows if r["pair"] == pair):
            best = max(fixed, key=lambda s: mean.get((pair, k, s), -1))
            auto, scratch = mean[(pair, k, "auto")], mean[(pair, k, "scratch")]
            regret, margin = mean[(pair, k, best)] - auto, auto - scratch
            # against the full-rate finetune: the same training as one of auto's candidates, and always
            # run beside auto (a re-run of `finetune` alone, after its default changed, is not)
            ref = secs[(pair, k, "finetune(trunk_lr_scale=1.0)")]
            cost = statistics.mean(secs[(pair, k, "auto")]) / statistics.mean(ref)
            regrets.append(regret)
            margins.append((margin, pair, k))
            costs.append((k, cost))
            picks = ", ".join(f"{n} x{c}" for n, c in sorted(
                {p: chosen[(pair, k)].count(p) for p in chosen[(pair, k)]}.items()))
            lines.append(f"| {pair} | {k} | {scratch:.1f} | {best} {mean[(pair, k, best)]:.1f} | {auto:.1f} ({picks}) | "
                         f"{regret:.1f} | {margin:+.1f} | {cost:.1f}x |")
    full = ["5", "20", "100", "all"], [0, 1, 2]
    if (args.shots, args.seeds) != full:
        lines.insert(0, f"**Reduced run** (the full suite, `--shots 5 20 100 all --seeds 0 1 2`, did not fit the "
                        f"time of a shared 2-core CPU): k = {', '.join(args.shots)}, seeds {args.seeds}."
                        + ("" if set(PRETRAINED) & {r["pair"] for r in rows} else " The MiniLM text pair and ImageNet "
                           "MobileNetV2 on digits (`--pairs minilm_topics mobilenet_digits`) are not in this run.")
                        + "\n")
    below = [(m, p, k) for m, p, k in margins if m < -0.5]
    by_k = defaultdict(list)
    for k, c in costs:
        by_k[k].append(c)
    ran = [n for n in PRETRAINED if n in {r["pair"] for r in rows}]
    if ran:   # their own budget, not the MLP pairs' defaults: the rows above say what it was
        lines += ["", "Pretrained sources, each under its own reduced budget: "
                  + "; ".join(f"`{n}`: {BUDGETS[n]}" for n in ran) + "."]
    lines += ["", f"Summary over {len(regrets)} pair x k cells (means over seeds): mean regret "
              f"{statistics.mean(regrets):.2f} points (target <= 1), worst regret {max(regrets):.1f} (target <= 3), "
              f"auto below scratch by more than 0.5 in {len(below)} cell(s)"
              + (": " + ", ".join(f"{p} k={k} {m:+.1f}" for m, p, k in below) if below else "")
              + " (target: none). auto's wall time against one full-rate `finetune` run (in the same process), mean by k: "
              + ", ".join(f"k={k} {statistics.mean(v):.1f}x" for k, v in by_k.items()) + ".",
              "", "auto's model is always the chosen candidate's own run on the split as given (k to train, k to "
              "validate), like every fixed strategy's, so its regret is the cost of its choice alone. Where one "
              "validation split leaves the choice against scratch open and the lead's standard error is above 0.02, "
              "the candidates still in contention train once more with the roles swapped (the cost column counts "
              "it); so do they where a lead displaced scratch on a split too small to resolve it to 0.02 (under 625 "
              "validation examples): it must hold on both rounds together."]
    return lines


if __name__ == "__main__":
    main()
