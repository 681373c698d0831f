"""Domain adaptation: source-only first, then every registered method at its defaults, on digit shifts
and MNIST-1D, with a trunk with BatchNorm and one without.

  pairs:  rot30 / rot45 (MNIST -> rotated), invert (-> colour-inverted), noise_blur (-> blurred and
          noisy), mnist1d (default arguments -> more shear and correlated noise); see da_domains.py.
  trunks: bn (LeNet-5-like with BatchNorm; CNN-1D with BatchNorm for MNIST-1D), plain (the same
          without BatchNorm).

No target label reaches training or selection: the kept epoch is the best on SOURCE validation (or
IWV / DEV with --selection). Target test labels score every epoch only to report two numbers: the
accuracy of the kept epoch and the best accuracy any epoch had in hindsight (what selection without
target labels costs). Sizes are arguments, so a reduced grid can run on a small CPU:

    python benchmarks/domain_adaptation.py                                  # the full grid: 3 seeds, 4,000 images
    python benchmarks/domain_adaptation.py --seeds 1 --images 1000 --epochs 8 --pairs rot45 invert
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, write_section  # noqa: E402
from da_domains import PAIRS, TRUNKS, digit_pair, make_model, mnist1d_pair  # noqa: E402

from taskshare import Task, TrainConfig  # noqa: E402
from taskshare.adapt import ADAPTERS, fit_adaptation, fit_source_free  # noqa: E402
from taskshare.train.loop import evaluate  # noqa: E402


def run(domains, pair: str, trunk: str, method: str, seed: int, args, reference: float | None,
        source_model=None) -> dict:
    (xs, ys, _, _), (xt, _, xt_test, yt_test) = domains
    t = torch.as_tensor
    n_val = len(xs) // 5
    task = Task("digit", num_classes=10)
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=2e-3, patience=args.epochs, min_steps=0,
                         progress=False, device=args.device, seed=seed)
    model = make_model(pair, trunk, seed)
    started = time.perf_counter()
    if method == "shot":      # source-free: the source-only model and the target inputs, nothing else
        model.load_state_dict(source_model.state_dict())
        history = fit_source_free(model, task, t(xt), config, target_test=(t(xt_test), t(yt_test)))
        curve = [r["val_target_accuracy"] for r in history.epochs]
        return {"target": evaluate(model, task, (t(xt_test), t(yt_test)))["accuracy"] * 100,
                "hindsight": max(curve) * 100,
                "source_val": evaluate(model, task, (t(xs[:n_val]), t(ys[:n_val])))["accuracy"] * 100,
                "warning": None, "seconds": time.perf_counter() - started, "model": None}
    # mixed_batch, a control: the target batches pass through the trunk beside the source ones (BatchNorm
    # statistics of both), with no adaptation loss (weight 0); what the batch alone does to source-only
    spec, weight = (None, None) if method == "source_only" else ("coral", 0.0) if method == "mixed_batch" else (method, None)
    history = fit_adaptation(model, task, (t(xs[n_val:]), t(ys[n_val:])), t(xt), (t(xs[:n_val]), t(ys[:n_val])), config,
                             method=spec, weight=weight, selection=args.selection,
                             target_test=(t(xt_test), t(yt_test)), source_only_score=reference)
    curve = [r["val_target_accuracy"] for r in history.epochs]
    return {"target": evaluate(model, task, (t(xt_test), t(yt_test)))["accuracy"] * 100,
            "hindsight": max(curve) * 100, "source_val": history.epochs[history.best_epoch]["val_accuracy"] * 100,
            "warning": getattr(history, "warning", None), "seconds": time.perf_counter() - started,
            "model": model if method == "source_only" else None}


def table(pair: str, trunk: str, results: dict[str, list[dict]]) -> list[str]:
    base = statistics.mean(r["target"] for r in results["source_only"])
    lines = [f"**{pair}, trunk {trunk}**", "",
             "| method | target acc. | vs source-only | best epoch in hindsight | selection cost | source val. |",
             "|---|---|---|---|---|---|"]
    for method, runs in results.items():
        acc = [r["target"] for r in runs]
        sd = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
        gain = statistics.mean(acc) - base
        hind = statistics.mean(r["hindsight"] for r in runs)
        flag = " (below source-only by > 2)" if gain < -2 else ""
        lines.append(f"| {method} | {statistics.mean(acc):.1f}{sd} | {gain:+.1f}{flag} | {hind:.1f} | "
                     f"{hind - statistics.mean(acc):.1f} | {statistics.mean(r['source_val'] for r in runs):.1f} |")
    return lines + [""]


def measure(args, methods: list[str], save: Path | None) -> dict:
    """Every (pair, trunk) cell: {"cells": {"pair/trunk": {method: [one dict per seed]}}, "warnings": [...]};
    with `save`, written there after each cell (a partial run keeps what it finished)."""
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "merge"}
    out = {"args": settings, "argv": sys.argv[1:], "device": device_line(), "cells": {}, "warnings": []}
    for pair in args.pairs:
        for trunk in args.trunks:
            results: dict[str, list[dict]] = {m: [] for m in methods}
            for seed in range(args.seeds):
                domains = mnist1d_pair(seed, args.images) if pair == "mnist1d" else digit_pair(args.mnist, pair, seed, args.images)
                reference, source_model = None, None
                for method in methods:
                    r = run(domains, pair, trunk, method, seed, args, reference, source_model)
                    if method == "source_only":
                        reference, source_model = r["source_val"] / 100, r["model"]
                    r.pop("model")
                    if r["warning"]:
                        out["warnings"].append(f"{pair}/{trunk}/seed {seed}: {r['warning']}")
                    results[method].append(r)
                    print(f"{pair} {trunk} seed {seed} {method}: target {r['target']:.1f} (hindsight {r['hindsight']:.1f}), "
                          f"source val {r['source_val']:.1f}, {r['seconds']:.0f} s", flush=True)
            out["cells"][f"{pair}/{trunk}"] = results
            if save is not None:
                save.write_text(json.dumps(out))
    return out


def _rerun_later(warning: str, later: list[dict]) -> bool:
    """Whether a later part re-ran the cell and method a warning ("pair/trunk/seed n: method: ...") is about."""
    where, method = warning.split(": ")[:2]
    cell = where.rsplit("/seed", 1)[0]
    return any(method in part["cells"].get(cell, {}) for part in later)


def section(parts: list[dict], selection: str) -> str:
    """The BENCHMARKS.md section from one or more measured parts (run side by side, one per core)."""
    args, cells = parts[0]["args"], {}
    for part in parts:
        for name, results in part["cells"].items():
            cell = cells.setdefault(name, {})
            for method, runs in results.items():
                # a later part re-runs a method after a fix: its runs replace the earlier ones in place (the
                # row order stays); source_only, which every part repeats, keeps the first part's
                if method not in cell or method != "source_only":
                    cell[method] = runs
    warnings = [w for i, part in enumerate(parts) for w in part["warnings"] if not _rerun_later(w, parts[i + 1:])]
    order = {f"{p}/{t}": (i, j) for i, p in enumerate(PAIRS) for j, t in enumerate(TRUNKS)}
    cells = dict(sorted(cells.items(), key=lambda item: order.get(item[0], (len(PAIRS), 0))))
    methods = list(dict.fromkeys(m for results in cells.values() for m in results))
    blocks, below, gains = [], [], {m: [] for m in methods}
    for name, results in cells.items():
        pair, trunk = name.split("/")
        blocks += table(pair, trunk, results)
        base = statistics.mean(r["target"] for r in results["source_only"])
        for m, rs in results.items():
            gain = statistics.mean(r["target"] for r in rs) - base
            gains[m].append(gain)
            if gain < -2:
                below.append(f"{m} on {name} ({gain:+.1f})")
    commands = "; ".join(f"`python benchmarks/domain_adaptation.py {' '.join(p['argv'])}`" for p in parts)
    head = [f"{parts[0]['device']}; {args['seeds']} seed(s), {args['images']} training images per domain (a fifth of the "
            f"source for validation), 1,000 target test images, {args['epochs']} epochs, batch 128, lr 2e-3, every "
            f"method at its defaults; selection on {selection} validation, never on target labels. `selection cost`: "
            f"the best target accuracy any epoch had (hindsight) minus the kept epoch's. Commands: {commands}"
            f"{' (then --merge of their --save files, in this order: a later part replaces the methods it re-ran)' if len(parts) > 1 else ''}.", ""]
    summary = [f"**Every method over the {len(cells)} cells** (pair x trunk; gain = mean target accuracy minus "
               f"source-only's, in points)", "", "| method | cells | mean gain | worst cell | best cell | cells > 2 below |",
               "|---|---|---|---|---|---|"]
    summary += [f"| {m} | {len(g)} | {statistics.mean(g):+.1f} | {min(g):+.1f} | {max(g):+.1f} | {sum(x < -2 for x in g)} |"
                for m, g in gains.items() if m != "source_only"]
    tail = ["More than 2 points below source-only: " + ("; ".join(below) if below else "none") + ".",
            "", "Source-task warnings: " + ("; ".join(warnings) if warnings else "none") + "."]
    return "\n".join(head + summary + [""] + blocks + tail)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    p.add_argument("--trunks", nargs="+", default=list(TRUNKS), choices=TRUNKS)
    p.add_argument("--methods", nargs="+", default=["source_only", *ADAPTERS.names(), "shot"],
                   help="registered methods, shot (source-free: adapts the source-only model on the target alone) "
                   "and mixed_batch (a control: target batches through the trunk, no adaptation loss)")
    p.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--images", type=int, default=4000, help="training images per domain (a fifth of the source validates)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--selection", default="source", choices=["source", "iwv", "dev"])
    p.add_argument("--device", default="auto")
    p.add_argument("--section", default="domain_adaptation")
    p.add_argument("--save", type=Path, help="write the measured runs here (JSON) instead of the section: one part "
                   "of a grid split over cores")
    p.add_argument("--merge", type=Path, nargs="+", help="no training: the section from these --save files")
    args = p.parse_args()
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
    else:
        methods = ["source_only", *[m for m in args.methods if m != "source_only"]]
        parts = [measure(args, methods, args.save)]
        if args.save is not None:
            return
    text = section(parts, parts[0]["args"]["selection"])
    write_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
