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
    python benchmarks/domain_adaptation.py --seeds 3 --images 800 --epochs 8  # the published reduced grid, one run
    python benchmarks/domain_adaptation.py --seeds 1 --images 1000 --epochs 8 --pairs rot45 invert

A grid can also run in parts (--save, one per core, then --merge), and a method changed later can be
re-measured alone: `--methods source_only shot --save part.json`, then `--update part.json` replaces its
rows in the published section, provided every re-measured source_only row reads exactly as published.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
        # `reference`, the source model's accuracy on its own validation, travels as a number: SHOT keeps
        # a source model below its floor unadapted; the source validation column is measured here only
        history = fit_source_free(model, task, t(xt), config, target_test=(t(xt_test), t(yt_test)),
                                  source_accuracy=reference)
        curve = [r["val_target_accuracy"] for r in history.epochs]
        return {"target": evaluate(model, task, (t(xt_test), t(yt_test)))["accuracy"] * 100,
                "hindsight": max(curve) * 100,
                "source_val": evaluate(model, task, (t(xs[:n_val]), t(ys[:n_val])))["accuracy"] * 100,
                "warning": getattr(history, "warning", None), "seconds": time.perf_counter() - started, "model": None}
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
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("merge", "update")}
    settings["mnist"] = os.path.relpath(args.mnist, ROOT)     # saved parts are shared: no path of this machine
    out = {"args": settings, "argv": sys.argv[1:], "device": device_line(), "cells": {}, "warnings": []}
    for pair in args.pairs:
        for trunk in args.trunks:
            # mixed_batch controls for BatchNorm's per-domain statistics: a trunk without BatchNorm has none
            results: dict[str, list[dict]] = {m: [] for m in methods if not (m == "mixed_batch" and trunk == "plain")}
            for seed in range(args.seeds):
                domains = mnist1d_pair(seed, args.images) if pair == "mnist1d" else digit_pair(args.mnist, pair, seed, args.images)
                reference, source_model = None, None
                for method in results:
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


def _merged(parts: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """The parts' cells in the grid's order; a later part re-runs a method after a fix: its runs replace
    the earlier ones in place (the row order stays); source_only, which every part repeats, keeps the
    first part's."""
    cells: dict[str, dict[str, list[dict]]] = {}
    for part in parts:
        for name, results in part["cells"].items():
            cell = cells.setdefault(name, {})
            for method, runs in results.items():
                if method not in cell or method != "source_only":
                    cell[method] = runs
    order = {f"{p}/{t}": (i, j) for i, p in enumerate(PAIRS) for j, t in enumerate(TRUNKS)}
    return dict(sorted(cells.items(), key=lambda item: order.get(item[0], (len(PAIRS), 0))))


def _gains(results: dict[str, list[dict]]) -> dict[str, float]:
    base = statistics.mean(r["target"] for r in results["source_only"])
    return {m: statistics.mean(r["target"] for r in rs) - base for m, rs in results.items()}


def _summary_row(method: str, gains: list[float]) -> str:
    return (f"| {method} | {len(gains)} | {statistics.mean(gains):+.1f} | {min(gains):+.1f} | {max(gains):+.1f} | "
            f"{sum(x < -2 for x in gains)} |")


def section(parts: list[dict], selection: str) -> str:
    """The BENCHMARKS.md section from one or more measured parts (run side by side, one per core)."""
    args, cells = parts[0]["args"], _merged(parts)
    warnings = [w for i, part in enumerate(parts) for w in part["warnings"] if not _rerun_later(w, parts[i + 1:])]
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
    summary += [_summary_row(m, g) for m, g in gains.items() if m != "source_only"]
    tail = ["More than 2 points below source-only: " + ("; ".join(below) if below else "none") + ".",
            "", "Source-task warnings: " + ("; ".join(warnings) if warnings else "none") + "."]
    return "\n".join(head + summary + [""] + blocks + tail)


def read_section(name: str, path: Path = ROOT / "BENCHMARKS.md") -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text()
    if start not in body or end not in body:
        raise SystemExit(f"{path.name} has no section {name!r} to update; measure the grid first")
    return body.split(start, 1)[1].split(end, 1)[0].strip()


def update(published: str, parts: list[dict], files: list[str]) -> str:
    """The published section with the rows of the methods `parts` re-ran replaced by theirs: each cell's
    row, the summary row, the cells-below list and the warnings; every other row stays as published.
    The parts re-run source_only beside the methods (a source-free method adapts its model); each cell's
    source_only row as re-measured must read exactly as published, or nothing is replaced, so the
    published baseline and the new rows come from runs that agree. The parts must cover every cell."""
    lines, cells = published.split("\n"), _merged(parts)
    rerun = [m for m in dict.fromkeys(m for results in cells.values() for m in results) if m != "source_only"]
    heads = {i: line for i, line in enumerate(lines) if line.startswith("**") and ", trunk " in line}
    published_cells = {"/".join(h.strip("*").split(", trunk ")): i for i, h in heads.items()}
    missing = [c for c in published_cells if c not in cells]
    if missing or not rerun:
        raise SystemExit(f"the parts re-ran {rerun or 'no method'} in {list(cells)}; expected at least one method "
                         f"besides source_only in every published cell (missing {missing})")

    def row_at(start: int, method: str) -> int | None:
        for i in range(start + 4, len(lines)):
            if not lines[i].startswith("|"):
                return None
            if lines[i].startswith(f"| {method} |"):
                return i
        return None

    below: dict[tuple[str, str], str] = {}
    for name, results in cells.items():
        pair, trunk = name.split("/")
        new_rows = {r.split(" | ")[0][2:]: r for r in table(pair, trunk, results)[4:-1]}
        start = published_cells[name]
        i = row_at(start, "source_only")
        if i is None or lines[i] != new_rows["source_only"]:
            raise SystemExit(f"{name}: source_only re-measured as\n{new_rows['source_only']}\npublished as\n"
                             f"{lines[i] if i is not None else '(no row)'}\nnot the same runs: measure the grid again")
        for method in (m for m in rerun if m in new_rows):     # mixed_batch runs on BatchNorm trunks only
            j = row_at(start, method)
            if j is None:      # a method new to the table goes last
                j = start + 4
                while j < len(lines) and lines[j].startswith("|"):
                    j += 1
                lines.insert(j, new_rows[method])
                published_cells = {c: (k + 1 if k > start else k) for c, k in published_cells.items()}
            else:
                lines[j] = new_rows[method]
        for method, gain in _gains(results).items():
            if method in rerun and gain < -2:
                below[(name, method)] = f"{method} on {name} ({gain:+.1f})"
    per_cell = [_gains(results) for results in cells.values()]
    gains = {m: [g[m] for g in per_cell if m in g] for m in rerun}      # a method counts the cells it ran in
    order = [line.split(" | ")[0][2:] for line in lines if line.startswith("| ") and line.count("|") == 7]
    for method in rerun:
        at = [i for i, line in enumerate(lines) if line.startswith(f"| {method} | {len(gains[method])} |")]
        if at:
            lines[at[0]] = _summary_row(method, gains[method])
    cell_order = list(published_cells)
    for i, line in enumerate(lines):
        if line.startswith("More than 2 points below source-only: "):
            old = line[len("More than 2 points below source-only: "):].rstrip(".")
            for entry in ([] if old == "none" else old.split("; ")):
                method, name = entry.split(" on ", 1)
                name = name.split(" (")[0]
                if method not in rerun:
                    below[(name, method)] = entry
            ranked = sorted(below, key=lambda k: (cell_order.index(k[0]), order.index(k[1]) if k[1] in order else 99))
            lines[i] = "More than 2 points below source-only: " + ("; ".join(below[k] for k in ranked) or "none") + "."
        if line.startswith("Source-task warnings: "):
            old = line[len("Source-task warnings: "):].rstrip(".")
            # a warning's own text may hold "; ": split only where the next one starts ("pair/trunk/seed n: ")
            entries = [] if old == "none" else re.split(r"; (?=[\w]+/[\w]+/seed \d+: )", old)
            kept = [w for w in entries if w.split(": ")[1] not in rerun]
            kept += [w for part in parts for w in part["warnings"]]
            lines[i] = "Source-task warnings: " + ("; ".join(kept) or "none") + "."
    commands = "; ".join(f"`python benchmarks/domain_adaptation.py {' '.join(p['argv'])}`" for p in parts)
    lines[0] += (f" Then the rows of {', '.join(rerun)} re-measured by {commands}, spliced in by "
                 f"`python benchmarks/domain_adaptation.py --update {' '.join(files)}` (every source_only row "
                 f"re-measured identical to the one above).")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    p.add_argument("--trunks", nargs="+", default=list(TRUNKS), choices=TRUNKS)
    p.add_argument("--methods", nargs="+", default=["source_only", *ADAPTERS.names(), "shot", "mixed_batch"],
                   help="registered methods, shot (source-free: adapts the source-only model on the target alone) "
                   "and mixed_batch (a control: target batches through the trunk, no adaptation loss; BatchNorm "
                   "trunks only)")
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
    p.add_argument("--update", type=Path, nargs="+", help="no training: replace in the published section the rows "
                   "of the methods these --save files re-ran (with source_only, which must match what is published)")
    args = p.parse_args()
    if args.update:
        parts = [json.loads(path.read_text()) for path in args.update]
        text = update(read_section(args.section), parts, [str(path) for path in args.update])
        write_section(args.section, text)
        print(text)
        return
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
