"""Checks of `taskshare advise` on the MNIST-1D transfer benchmark (digits 0-4 -> 5-9, MLP 256x3,
the same protocol as benchmarks/transfer_mnist1d.py, 3 seeds):

1. At each k (labels per class), the strategy advise recommends (from the k-shot training split only)
   against every fixed strategy trained on the same splits: the gap to the best, in points.
2. The transferability scores of a well-trained source model (60 epochs on A), a poorly trained one
   (1 epoch on 600 examples of A) and a random trunk, on B's training split: each score should rank
   them in that order.

    python benchmarks/advise.py     # about 6 minutes on 1 CPU thread
"""
from __future__ import annotations

import copy
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

from taskshare import Task  # noqa: E402
from taskshare.advise import advise, h_score, leep, logme, nce  # noqa: E402
from taskshare.advise.advise import _features  # noqa: E402
from taskshare.data import few_shot  # noqa: E402
from taskshare.experiments.task_data import TaskData, load_task_data  # noqa: E402
from taskshare.experiments.transfer import pretrain  # noqa: E402
from transfer_mnist1d import MODELS, pretrained_setup  # noqa: E402
from taskshare.models.surgery import reinitialize, split_head  # noqa: E402
from taskshare.models.trunk_head import transfer_model  # noqa: E402
from taskshare.transfer import build_strategy, compare  # noqa: E402

FIXED = ["scratch", "linear_probe", {"name": "last_k", "k": 1}, {"name": "finetune", "trunk_lr_scale": 1.0},
         "finetune", "layer_decay", "gradual_unfreeze", "lp_ft", "l2_sp"]
SHOTS = [5, 20, 100, "all"]


def label(spec) -> str:
    return build_strategy(spec).label()


def recommendation_check(config, net, target, source_size, seeds) -> str:
    task = Task("target", "multiclass", num_classes=target.num_classes)
    base = transfer_model(net, task, example=torch.as_tensor(target.x[:2]))
    acc: dict[tuple, list[float]] = {}
    chosen: dict = {}
    for shot in SHOTS:
        for seed in seeds:
            splits = few_shot((target.x, target.y), shot, seed=seed, val_per_class=config.transfer.val_per_class,
                              test=(target.x_test, target.y_test))
            adv = advise(splits.train, task, {"mlp": net}, source_size=source_size, seed=seed)
            spec = {"name": adv.strategy, **adv.strategy_args} if adv.strategy_args else adv.strategy
            chosen.setdefault(shot, []).append(label(spec))
            cfg = replace(config.transfer.train, seed=seed)
            strategies = FIXED + ([spec] if label(spec) not in {label(f) for f in FIXED} else [])
            results = {r.strategy: r.test["accuracy"] * 100 for r in compare(base, task, splits, strategies, cfg,
                                                                              source_size, shot)}
            for name, value in results.items():
                acc.setdefault((name, shot), []).append(value)
            acc.setdefault(("advise", shot), []).append(results[label(spec)])
            print(f"k={shot} seed={seed} advise -> {label(spec)}: {acc[('advise', shot)][-1]:.1f}", flush=True)
    lines = ["| k | advise recommends | advise | best fixed strategy | gap (points) |", "|---|---|---|---|---|"]
    for shot in SHOTS:
        fixed = {n: statistics.mean(v) for (n, s), v in acc.items() if s == shot and n != "advise"}
        best = max(fixed, key=fixed.get)
        mine = statistics.mean(acc[("advise", shot)])
        picks = ", ".join(sorted(set(chosen[shot])))
        lines.append(f"| {shot} | {picks} | {mine:.1f} | {best} {fixed[best]:.1f} | {mine - fixed[best]:+.1f} |")
    return "\n".join(lines)


def score_check(config, well, target) -> str:
    source = load_task_data(config.source, {})
    small = TaskData(source.x[:600], source.y[:600], source.x_test, source.y_test)
    poor_cfg = replace(config, pretrain=replace(config.pretrain, train=replace(config.pretrain.train, epochs=1, min_steps=0)))
    poor, poor_metrics = pretrain(poor_cfg, small)
    trunk_well, head_well = split_head(well, example=torch.as_tensor(target.x[:2]))
    random_trunk = reinitialize(copy.deepcopy(trunk_well), 0)
    lines = ["| k | source model | LogME | H-score | LEEP | NCE |", "|---|---|---|---|---|---|"]
    orders = []
    for shot in [20, 100, "all"]:
        splits = few_shot((target.x, target.y), shot, seed=0, test=(target.x_test, target.y_test))
        x, y = splits.train.x, splits.train.y.long()
        if len(x) > 3000:
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:3000]
            x, y = x[keep], y[keep]
        rows = {}
        for name, model in (("well trained", well), ("poorly trained", poor), ("random trunk", None)):
            if model is None:
                f = _features(random_trunk, x)
                rows[name] = (logme(f, y), h_score(f, y), float("nan"), float("nan"))
            else:
                trunk, head = split_head(model, example=x[:2])
                f = _features(trunk, x)
                probs = torch.softmax(head(f), 1).detach()
                rows[name] = (logme(f, y), h_score(f, y), leep(probs, y), nce(probs.argmax(1), y))
            lines.append(f"| {shot} | {name} | " + " | ".join("" if v != v else f"{v:.3f}" for v in rows[name]) + " |")
        for i, score in enumerate(("LogME", "H-score", "LEEP", "NCE")):
            values = [rows[n][i] for n in ("well trained", "poorly trained", "random trunk") if rows[n][i] == rows[n][i]]
            orders.append(f"{score} at k={shot}: {'ordered' if values == sorted(values, reverse=True) else 'NOT ordered'}")
    return (f"Poorly trained source: test accuracy on A {poor_metrics['accuracy'] * 100:.1f}%.\n\n" + "\n".join(lines)
            + "\n\n" + "; ".join(orders) + ".")


def main() -> None:
    torch.set_num_threads(1)
    seeds = [0, 1, 2]
    started = time.perf_counter()
    config, source, target, net, metrics = pretrained_setup(MODELS["mlp"], seeds)
    table = recommendation_check(config, net, target, len(source.y), seeds)
    scores = score_check(config, net, target)
    text = (f"Measured on {machine()} in {time.perf_counter() - started:.0f} s; source model test accuracy on A "
            f"{metrics['accuracy'] * 100:.1f}%; B test accuracy (%), mean over seeds {seeds}.\n\n{table}\n\n"
            f"Transferability scores on B's training split (higher = better; LEEP and NCE need a source head, so "
            f"the random trunk has none):\n\n{scores}")
    write_section("advise_mnist1d", text)
    print(text)


if __name__ == "__main__":
    main()
