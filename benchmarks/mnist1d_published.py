"""The default TrainConfig against the published MNIST-1D accuracies (Greydanus 2020: MLP 68%, CNN 94%).

    python benchmarks/mnist1d_published.py               # 2 seeds, both models, old and new defaults
    python benchmarks/mnist1d_published.py --seeds 0     # quicker

Protocol: the mnist1d package's defaults (5,000 signals, 4,000 train / 1,000 test, generator seed 42);
10% of train held out (stratified) for early stopping; the zoo's `mlp` and `cnn1d` with their default
arguments, trained by `fit` with `TrainConfig()` untouched but for the seed and the progress bar.
Accuracy on the 1,000 test signals, mean over seeds. The "previous defaults" rows train the same
models with the settings the defaults had before (epochs 30, patience 8), side by side, so the extra
wall time of the new defaults is a ratio from one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, publish  # noqa: E402

from taskshare import Task, TrainConfig, evaluate, fit  # noqa: E402
from taskshare.data import split  # noqa: E402
from taskshare.data.mnist1d import generate  # noqa: E402
from taskshare.models import build_model  # noqa: E402
from taskshare.train.config import patience_of  # noqa: E402

PUBLISHED = {"mlp": 68.0, "cnn1d": 94.0}   # Greydanus 2020, Table 1 (MLP, CNN)
PREVIOUS = {"epochs": 30, "patience": 8, "lr": 1e-3}


def run(model_name: str, seed: int, config: TrainConfig, data) -> tuple[float, float, int]:
    torch.manual_seed(seed)
    net = build_model(model_name, in_features=40, num_outputs=10)
    splits = split((data["x"], data["y"]), val_fraction=0.1, seed=seed)
    task = Task("mnist1d", num_classes=10)
    started = time.perf_counter()
    history = fit(net, task, splits.train, splits.val, config)
    seconds = time.perf_counter() - started
    acc = evaluate(net, task, (data["x_test"], data["y_test"]))["accuracy"] * 100
    return acc, seconds, history.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn1d"])
    parser.add_argument("--no-previous", action="store_true", help="skip the previous defaults' rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = generate(num_samples=5000)
    assert len(data["x"]) == 4000 and len(data["x_test"]) == 1000
    settings = {"defaults": TrainConfig(progress=False)}
    if not args.no_previous:
        settings["previous defaults"] = replace(TrainConfig(progress=False), **PREVIOUS)
    rows, totals = [], {}
    for model_name in args.models:
        for label, config in settings.items():
            runs = [run(model_name, seed, replace(config, seed=seed), data) for seed in args.seeds]
            accs = [r[0] for r in runs]
            mean = statistics.mean(accs)
            seconds = sum(r[1] for r in runs)
            totals[(model_name, label)] = seconds
            print(f"{model_name} {label}: {accs} in {seconds:.0f} s", flush=True)
            rows.append(f"| {model_name} | {label} | {mean:.1f} | {' / '.join(f'{a:.1f}' for a in accs)} | "
                        f"{PUBLISHED[model_name]:.0f} | {mean - PUBLISHED[model_name]:+.1f} | "
                        f"{statistics.mean(r[2] for r in runs):.0f} | {seconds / len(runs):.1f} s |")
    d = TrainConfig()
    lines = [f"Default `TrainConfig` (epochs cap {d.epochs}, patience {patience_of(d)}, lr {d.lr:g}, {d.schedule}, "
             f"batch {d.batch_size}, best weights restored) on the mnist1d package's default split; seeds "
             f"{args.seeds}; {device_line()}.", "",
             "| model | training settings | test accuracy (%) | per seed | published | difference | steps | seconds per run |",
             "|---|---|---|---|---|---|---|---|", *rows]
    if not args.no_previous:
        ratios = [f"{m} {totals[(m, 'defaults')] / totals[(m, 'previous defaults')]:.1f}x" for m in args.models]
        lines += ["", f"Wall time of the new defaults against the previous ones (epochs {PREVIOUS['epochs']}, "
                  f"patience {PREVIOUS['patience']}, lr {PREVIOUS['lr']:g}), same machine, same run: {', '.join(ratios)}."]
    publish("mnist1d_published", lines)


if __name__ == "__main__":
    main()
