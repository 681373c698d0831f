"""`auto` on binary, multi-label and regression targets: the paired evidence (auto_scores.py) against
the rule it replaced for these kinds (keep the candidate best on one validation split), scratch and
every fixed strategy, on MNIST-1D. Writes its section into BENCHMARKS.md.

    python benchmarks/auto_kinds.py                         # 2 sources x 3 kinds x 2 sizes x 3 seeds
    python benchmarks/auto_kinds.py --seeds 0 --sizes 20    # a quick look

Sources: an MLP pretrained on digits 0-4 (its features help with 5-9), and the same MLP pretrained on
digits 0-4 with shuffled labels (features that should not help). Targets, on digits 5-9: binary "is the
digit odd", multi-label (odd, at least 7, 5 or 8), and regression onto the digit's indicator vector
(5 outputs). n examples
train and another n validate; the test split is MNIST-1D's own. The old rule's choice is read from
the same runs as the fixed strategies (it trained exactly these candidates and kept the best
validation score), so both rules are scored on identical models.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

from taskshare import Task, TrainConfig, fit, transfer_model  # noqa: E402
from taskshare.data import ArrayDataset, Splits  # noqa: E402
from taskshare.data.mnist1d import generate  # noqa: E402
from taskshare.models import build_model  # noqa: E402
from taskshare.transfer import build_strategy, run_strategy  # noqa: E402
from taskshare.transfer.run import data_facts  # noqa: E402

KINDS = {
    "binary": (Task("odd", "binary"), lambda d: (d % 2).astype(np.float32)),
    "multilabel": (Task("three", "multilabel", num_classes=3),
                   lambda d: np.stack([d % 2, d >= 7, np.isin(d, [5, 8])], 1).astype(np.float32)),
    # the digit's indicator vector as 5 regression outputs (least squares on the class): the digit's
    # value as one output is close to R² 0 for every strategy at these sizes, which tells nothing
    "regression": (Task("indicators", "regression", num_outputs=5), lambda d: np.eye(5, dtype=np.float32)[d - 5]),
}


def _pretrain(data: dict, shuffle: bool, epochs: int):
    keep = data["y"] < 5
    x, y = data["x"][keep], data["y"][keep].copy()
    if shuffle:       # the same inputs with labels that carry nothing
        y = np.random.default_rng(0).permutation(y)
    torch.manual_seed(0)
    net = build_model("mlp", in_features=40, num_outputs=5)
    n = int(len(x) * 0.9)
    fit(net, Task("source", num_classes=5), (x[:n], y[:n]), (x[n:], y[n:]),
        TrainConfig(epochs=epochs, progress=False, device="cpu"))
    return net


def _splits(data: dict, kind: str, n: int, seed: int) -> Splits:
    target = KINDS[kind][1]
    pool = np.flatnonzero(data["y"] >= 5)
    idx = np.random.default_rng(seed).permutation(pool)[:2 * n]
    test = data["y_test"] >= 5
    return Splits(ArrayDataset(data["x"][idx[:n]], target(data["y"][idx[:n]])),
                  ArrayDataset(data["x"][idx[n:]], target(data["y"][idx[n:]])),
                  ArrayDataset(data["x_test"][test], target(data["y_test"][test])))


def cell(net, kind: str, splits: Splits, config: TrainConfig) -> dict:
    task = KINDS[kind][0]
    model = transfer_model(net, task, example=splits.train.x[:2])
    facts = data_facts(task, splits)
    auto = build_strategy("auto")
    runs = {}
    started = time.perf_counter()
    for strategy in auto.candidates(facts):
        _, r = run_strategy(model, task, splits, strategy, config)
        runs[strategy.label()] = r
    fixed_seconds = time.perf_counter() - started
    sign = 1 if task.higher_is_better else -1
    old = max(runs, key=lambda s: sign * runs[s].val_score)          # the rule auto had for these kinds
    started = time.perf_counter()
    _, new = run_strategy(model, task, splits, auto, config)
    return {"test": {s: r.test[task.main_metric] for s, r in runs.items()}, "old": old,
            "new": new.strategy.split(" -> ")[-1], "new_test": new.test[task.main_metric],
            "rounds": 2 if "2 round(s)" in new.note else 1,
            "auto_seconds": time.perf_counter() - started, "fixed_seconds": fixed_seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sizes", type=int, nargs="+", default=[20, 100], help="examples to train (and to validate)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=40, help="each transfer run's epoch cap")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = generate(num_samples=6000)
    sources = {"digits 0-4": _pretrain(data, False, args.pretrain_epochs),
               "shuffled labels": _pretrain(data, True, args.pretrain_epochs)}
    rows = []
    for source, net in sources.items():
        for kind in args.kinds:
            for n in args.sizes:
                cells = []
                for seed in args.seeds:
                    config = TrainConfig(epochs=args.epochs, progress=False, device="cpu", seed=seed)
                    c = cell(net, kind, _splits(data, kind, n, seed), config)
                    print(f"{source} {kind} n={n} seed={seed}: old {c['old']} {c['test'][c['old']]:.3f}, "
                          f"auto {c['new']} {c['new_test']:.3f}, scratch {c['test']['scratch']:.3f}", flush=True)
                    cells.append(c)
                rows.append((source, kind, n, cells))
    lines = _table(rows, args, time.perf_counter() - t0)
    if args.no_write:
        print("\n".join(lines))
    else:
        publish("auto_kinds", lines)


def _table(rows, args, seconds: float) -> list[str]:
    mean = statistics.mean
    metric = {k: KINDS[k][0].main_metric for k in KINDS}
    out = [
        "### `auto` on binary, multi-label and regression targets", "",
        f"`python benchmarks/auto_kinds.py --seeds {' '.join(map(str, args.seeds))} --sizes "
        f"{' '.join(map(str, args.sizes))}`", "",
        "MNIST-1D digits 5-9 as a binary (odd?), a multi-label (odd, >= 7, 5 or 8) and a regression (the digit's "
        "indicator vector, 5 outputs) target; an MLP pretrained on digits 0-4, or on the same digits with shuffled labels. n examples "
        "train and n validate. Test score x 100 (AUROC, macro AUROC, R²), mean over seeds "
        f"{args.seeds}. *Best on validation*: the rule `auto` used for these kinds before (the candidate with "
        "the best validation score of one split); *auto*: the paired per-example evidence (Brier score for "
        "AUROC, squared error for R²), refusal below scratch and the second round. *Best fixed*: the best "
        "strategy chosen afterwards on test. Both rules read the same candidates (linear probe, LP-FT, gradual "
        f"unfreezing, finetune at its default rates and at the full rate, scratch), {args.epochs} epochs at most each. "
        f"{seconds:.0f} s in all on {machine()}.", "",
        "| source | target | n | scratch | best fixed | best on validation | auto | auto - best on val | "
        "auto - scratch | auto's choices | 2nd rounds | auto / fixed time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    diffs, vs_scratch = [], []
    for source, kind, n, cells in rows:
        strategies = list(cells[0]["test"])
        best_fixed = max(mean(100 * c["test"][s] for c in cells) for s in strategies)
        old = mean(100 * c["test"][c["old"]] for c in cells)
        new = mean(100 * c["new_test"] for c in cells)
        scratch = mean(100 * c["test"]["scratch"] for c in cells)
        diffs.append(new - old)
        vs_scratch.append(new - scratch)
        choices = ", ".join(_short(c["new"]) for c in cells)
        ratio = mean(c["auto_seconds"] / c["fixed_seconds"] for c in cells)
        out.append(f"| {source} | {kind} ({metric[kind]}) | {n} | {scratch:.1f} | {best_fixed:.1f} | {old:.1f} | "
                   f"{new:.1f} | {new - old:+.1f} | {new - scratch:+.1f} | {choices} | "
                   f"{sum(c['rounds'] == 2 for c in cells)}/{len(cells)} | {ratio:.2f}x |")
    out += ["", f"auto minus best on validation: mean {mean(diffs):+.2f} points, worst {min(diffs):+.2f}; "
            f"auto minus scratch: mean {mean(vs_scratch):+.2f}, worst {min(vs_scratch):+.2f} "
            f"(per row, mean over seeds). *auto / fixed time*: auto's wall time over that of training the "
            f"six candidates once."]
    return out


def _short(label: str) -> str:
    return (label.replace("finetune(trunk_lr_scale=1.0)", "ft1").replace("finetune(trunk_lr_scale=0.1)", "ft.1")
            .replace("gradual_unfreeze", "gu").replace("linear_probe", "probe"))


if __name__ == "__main__":
    main()
