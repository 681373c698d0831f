"""MNIST-1D transfer benchmark: pretrain on digits 0-4 (A), transfer to 5-9 (B) with k labelled
examples per class, every strategy against scratch, 3 seeds. Writes its tables into BENCHMARKS.md.

    python benchmarks/transfer_mnist1d.py --model mlp     # about 4 minutes on 1 CPU thread
    python benchmarks/transfer_mnist1d.py --model cnn1d   # about 15 minutes
    python benchmarks/transfer_mnist1d.py --speed         # feature cache and loop overhead

Protocol: 30,000 MNIST-1D samples (the package's 80/20 train/test split); A's training part trains the
source model (10% held out for early stopping). For B, k examples per class train and another k per
class validate (early stopping and auto's choice); "all" uses every B training example with a 10%
hold-out. Accuracy is on B's untouched test split (about 3,000 signals).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_section  # noqa: E402

from taskshare.evaluate import summarize  # noqa: E402
from taskshare.evaluate.report.transfer import markdown_table  # noqa: E402
from taskshare.experiments.specs import ModelSpec  # noqa: E402
from taskshare.experiments.task_data import load_task_data  # noqa: E402
from taskshare.experiments.transfer import ExperimentConfig, pretrain, transfer_all  # noqa: E402

MODELS = {"mlp": ModelSpec("mlp", {"hidden": [256, 256, 256]}),
          "cnn1d": ModelSpec("cnn1d", {"channels": [32, 32, 32]})}
WIDE_CNN = ModelSpec("cnn1d", {"channels": [128, 128, 128]})  # speed table only: a costlier trunk
STRATEGIES = ["scratch", "linear_probe", {"name": "last_k", "k": 1}, {"name": "finetune", "trunk_lr_scale": 1.0},
              "finetune", "layer_decay", "gradual_unfreeze", "lp_ft", "l2_sp", "auto",
              {"name": "auto", "confirm": True}, {"name": "auto", "confirm": False}]
AUTO_ROWS = {"auto(confirm=True)": "auto_sweep", "auto(confirm=False)": "auto_rule"}
SGD_PROBE = {"name": "linear_probe", "solver": "sgd"}  # the cache speed-up is an SGD epoch's


def pretrained_setup(model: ModelSpec, seeds: list[int], strategies=None):
    """The benchmark's config (no progress bars), both tasks' data, and the source model trained on A."""
    base = ExperimentConfig(model=model)
    config = replace(base, transfer=replace(base.transfer, seeds=seeds, strategies=strategies or base.transfer.strategies,
                                            train=replace(base.transfer.train, progress=False)),
                     pretrain=replace(base.pretrain, train=replace(base.pretrain.train, progress=False)))
    generated: dict = {}
    source = load_task_data(config.source, generated)
    target = load_task_data(config.target, generated)
    net, source_metrics = pretrain(config, source)
    return config, source, target, net, source_metrics


def accuracy_benchmark(model: str, seeds: list[int], out: Path) -> None:
    started = time.perf_counter()
    config, source, target, net, source_metrics = pretrained_setup(MODELS[model], seeds, STRATEGIES)
    rows = transfer_all(config, net, target, len(source.y),
                        on_result=lambda r: print(f"k={r['labels_per_class']} seed={r['seed']} {r['strategy']}: "
                                                  f"{r['test']['accuracy'] * 100:.1f}", flush=True))
    for r in rows:  # each auto mode gets its own row
        for label, row in AUTO_ROWS.items():
            r["strategy"] = r["strategy"].replace(label, row)
    summary = summarize(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"transfer_mnist1d_{model}.json").write_text(json.dumps(rows, indent=1, default=str))
    choices = {}
    for r in rows:
        if r["strategy"].startswith("auto"):
            choices.setdefault((r["strategy"].split(" -> ")[0], str(r["labels_per_class"])), set()).add(
                r["strategy"].split(" -> ")[-1])
    auto_gap = []
    for shot in summary.shots:
        fixed = [s for s in summary.strategies if not s.startswith("auto")]
        best_fixed = max(summary.cells[(s, shot)].mean for s in fixed)
        gaps = ", ".join(f"{name} {100 * (summary.cells[(name, shot)].mean - best_fixed):+.1f}"
                         for name in ("auto", "auto_sweep", "auto_rule"))
        auto_gap.append(f"k={shot}: {gaps}")
    text = [f"### {model}: B test accuracy (%), mean ± std over seeds {seeds}",
            "", f"Source model on A: test accuracy {source_metrics['accuracy'] * 100:.1f}%. "
            f"Run time {time.perf_counter() - started:.0f} s on {machine()}.", "",
            markdown_table(summary), "",
            "auto's choices: " + "; ".join(f"{name} at k={k}: {', '.join(sorted(v))}" for (name, k), v in sorted(choices.items())),
            "", "auto against the best fixed strategy, points (auto = the default: paired validation evidence "
            "against scratch; auto_sweep = auto(confirm=True), the same since evidence is the default; "
            "auto_rule = auto(confirm=False), the size rule alone): " + "; ".join(auto_gap)]
    write_section(f"transfer_mnist1d_{model}", "\n".join(text))
    print("\n".join(text))


def speed_benchmark(rounds: int = 5) -> None:
    """Linear probe with and without the feature cache (same epochs, same result), and the loop's
    step time against a minimal hand-written loop doing the same optimisation."""
    from taskshare import Task, TrainConfig, fit
    from taskshare.data import few_shot
    from taskshare.data.loaders import TensorLoader
    from taskshare.models import build_model, transfer_model
    from taskshare.train.loop import make_adamw
    from taskshare.train.schedule import make_scheduler
    from taskshare.transfer import run_strategy

    generated: dict = {}
    base = ExperimentConfig()
    target = load_task_data(base.target, generated)
    task = Task("target", "multiclass", num_classes=5)
    splits = few_shot((target.x, target.y), "all", seed=0, test=(target.x_test, target.y_test))
    lines = [f"Measured on {machine()}; medians of {rounds} rounds, run side by side in one process.", "",
             "| trunk | epoch, recomputing the trunk | epoch, cached features | speed-up | one-off caching | same accuracy |",
             "|---|---|---|---|---|---|"]
    cfg = TrainConfig(epochs=10, patience=100, progress=False, device="cpu", min_steps=0)
    for name, spec in (("mlp", MODELS["mlp"]), ("cnn1d", MODELS["cnn1d"]), ("cnn1d, 128 channels", WIDE_CNN)):
        torch.manual_seed(0)
        net = build_model(spec.name, 40, 5, **spec.args)
        pre = transfer_model(net, task, example=torch.as_tensor(target.x[:2]))
        plain_t, cached_t, cache_build, same = [], [], [], True
        for _ in range(rounds):
            _, plain = run_strategy(pre, task, splits, SGD_PROBE, cfg, cache=False)
            t0 = time.perf_counter()
            _, cached = run_strategy(pre, task, splits, SGD_PROBE, cfg, cache=True)
            total = time.perf_counter() - t0
            plain_t.append(plain.stages[0]["seconds"] / plain.stages[0]["epochs"])
            cached_t.append(cached.stages[0]["seconds"] / cached.stages[0]["epochs"])
            cache_build.append(total - cached.stages[0]["seconds"] - 0)  # caching + test evaluation
            same &= plain.test == cached.test
        p, c = statistics.median(plain_t), statistics.median(cached_t)
        lines.append(f"| {name} | {p * 1e3:.1f} ms | {c * 1e3:.1f} ms | {p / c:.1f}x | "
                     f"{statistics.median(cache_build) * 1e3:.0f} ms | {'yes' if same else 'NO'} |")

    # Loop overhead: fit() against a hand-written loop with the same optimizer, schedule and clipping.
    lines += ["", "| model | hand-written loop, per step | taskshare fit(), per step | ratio |", "|---|---|---|---|"]
    x, y = splits.train.x, splits.train.y
    for name in ("mlp", "cnn1d"):
        hand, ours = [], []
        for r in range(rounds):
            torch.manual_seed(r)
            model = build_model(name, 40, 5, **MODELS[name].args)
            cfg = TrainConfig(epochs=3, progress=False, device="cpu", min_steps=0)
            loader = TensorLoader(x, y, cfg.batch_size, shuffle=True, seed=r)
            opt = make_adamw(model.parameters(), cfg.lr, cfg.weight_decay)  # same optimizer: isolates loop overhead
            sched = make_scheduler(opt, cfg.epochs * len(loader), cfg.schedule, cfg.warmup)
            params = list(model.parameters())
            t0 = time.perf_counter()
            for _ in range(cfg.epochs):
                model.train()
                for xb, yb in loader:
                    loss = torch.nn.functional.cross_entropy(model(xb), yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                    opt.step()
                    sched.step()
            hand.append((time.perf_counter() - t0) / (cfg.epochs * len(loader)))
            torch.manual_seed(r)
            model = build_model(name, 40, 5, **MODELS[name].args)
            history = fit(model, task, splits.train, None, replace(cfg, seed=r))
            ours.append(history.seconds / (cfg.epochs * len(loader)))
        h, o = statistics.median(hand), statistics.median(ours)
        lines.append(f"| {name} | {h * 1e6:.0f} µs | {o * 1e6:.0f} µs | {o / h:.3f}x |")
    text = "\n".join(lines)
    write_section("transfer_speed", text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--speed", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.speed:
        speed_benchmark()
    if args.model:
        accuracy_benchmark(args.model, args.seeds, ROOT / "benchmarks" / "results")


if __name__ == "__main__":
    main()
