"""Domain adaptation: source-only, every method, and the target-supervised upper bound, 3 seeds.

  mnist1d: source = MNIST-1D with its default arguments; target = MNIST-1D generated with harder
           arguments (shear 1.2 instead of 0.75, correlated noise 0.45 instead of 0.25, another seed);
           all 10 classes; CNN-1D trunk (32-32-32, BatchNorm).
  mnist:   MNIST-10k; source = the first 5,000 images, target = the other 5,000 colour-inverted
           (1 - x); CNN (16-32-64, BatchNorm).

No target label is used in training or selection (early stopping and the kept epoch come from SOURCE
validation); target labels only score the final model. The upper bound trains on labelled target data.

    python benchmarks/domain_adaptation.py --part mnist1d [--device cuda] [--seeds 3]
    python benchmarks/domain_adaptation.py --part mnist --mnist PATH/mnist10k.npz
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, write_section  # noqa: E402

from taskshare import Task, TrainConfig  # noqa: E402
from taskshare.adapt import ADAPTERS, fit_adaptation, proxy_a_distance  # noqa: E402
from taskshare.models import build_model  # noqa: E402
from taskshare.models.surgery import split_head  # noqa: E402
from taskshare.models.trunk_head import TrunkHead  # noqa: E402
from taskshare.train.loop import evaluate  # noqa: E402

METHODS = ["source_only", *ADAPTERS.names(), "target_supervised"]


def mnist1d_domains(seed: int):
    from taskshare.data.mnist1d import generate
    src = generate(10_000, seed=42)
    tgt = generate(10_000, seed=1000 + seed, shear_scale=1.2, corr_noise_scale=0.45)
    return (src["x"], src["y"], src["x_test"], src["y_test"]), (tgt["x"], tgt["y"], tgt["x_test"], tgt["y_test"])


def mnist_domains(path: str, seed: int):
    data = np.load(path)
    x = data["images"].astype(np.float32) / 255.0
    y = data["labels"]
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order][:, None], y[order]
    s, t = slice(0, 5000), slice(5000, 10000)
    xs, ys, xt, yt = x[s], y[s], 1.0 - x[t], y[t]
    return (xs[:4000], ys[:4000], xs[4000:], ys[4000:]), (xt[:4000], yt[:4000], xt[4000:], yt[4000:])


def make_model(part: str, seed: int) -> TrunkHead:
    torch.manual_seed(seed)
    if part == "mnist1d":
        net = build_model("cnn1d", 40, 10)
        example = torch.zeros(2, 40)
    else:
        net = build_model("cnn2d", 1, 10)
        example = torch.zeros(2, 1, 28, 28)
    trunk, head = split_head(net, example=example)
    return TrunkHead(trunk, head)


def run(part: str, method: str, seed: int, domains, device: str, epochs: int) -> tuple[float, TrunkHead]:
    (xs, ys, xs_test, ys_test), (xt, yt, xt_test, yt_test) = domains
    task = Task("digit", num_classes=10)
    n_val = len(xs) // 5
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    config = TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, patience=8, min_steps=0, progress=False,
                         device=device, seed=seed)
    model = make_model(part, seed)
    if method == "target_supervised":
        fit_adaptation(model, task, (t(xt[n_val:]), t(yt[n_val:])), t(xt), (t(xt[:n_val]), t(yt[:n_val])), config)
    else:
        fit_adaptation(model, task, (t(xs[n_val:]), t(ys[n_val:])), t(xt), (t(xs[:n_val]), t(ys[:n_val])), config,
                       method=None if method == "source_only" else method)
    return evaluate(model, task, _ds(xt_test, yt_test))["accuracy"] * 100, model


def _ds(x, y):
    from taskshare.data import to_dataset
    return to_dataset((torch.as_tensor(x), torch.as_tensor(y)), "target test")


@torch.no_grad()
def domain_distance(domains, model: TrunkHead | None = None) -> float:
    """Proxy A-distance between the test inputs of the two domains, raw (flattened) or as `model`'s
    trunk features."""
    (_, _, xs, _), (_, _, xt, _) = domains
    n = min(len(xs), len(xt), 1000)
    xs, xt = torch.as_tensor(xs[:n]), torch.as_tensor(xt[:n])
    if model is not None:
        model.eval()
        device = next(model.parameters()).device
        xs, xt = model.trunk(xs.to(device)).cpu(), model.trunk(xt.to(device)).cpu()
    return proxy_a_distance(xs.reshape(n, -1), xt.reshape(n, -1))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["mnist1d", "mnist"], required=True)
    p.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    results: dict[str, list[float]] = {m: [] for m in METHODS}
    distances, feature_distances = [], []
    for seed in range(args.seeds):
        domains = mnist1d_domains(seed) if args.part == "mnist1d" else mnist_domains(args.mnist, seed)
        distances.append(domain_distance(domains))
        for method in METHODS:
            acc, model = run(args.part, method, seed, domains, args.device, args.epochs)
            results[method].append(acc)
            if method == "source_only":
                feature_distances.append(domain_distance(domains, model))
            print(f"{args.part} seed {seed} {method}: {acc:.1f}", flush=True)
    base = statistics.mean(results["source_only"])
    title = {"mnist1d": "MNIST-1D default -> harder arguments", "mnist": "MNIST-10k -> colour-inverted"}[args.part]
    lines = [f"{title}; {device_line()}; target test accuracy (%), mean ± standard deviation over {args.seeds} "
             f"seeds. How different the domains are (proxy A-distance, 0 = indistinguishable, 2 = separable): "
             f"{statistics.mean(distances):.2f} on the raw inputs, {statistics.mean(feature_distances):.2f} on the "
             f"source-only model's features. Default trade-off weights (1; entropy 0.1).", "",
             "| method | target accuracy | vs source only |", "|---|---|---|"]
    for method, accs in results.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(f"| {method} | {statistics.mean(accs):.1f} ± {sd:.1f} | {statistics.mean(accs) - base:+.1f} |")
    text = "\n".join(lines)
    write_section(f"domain_adaptation_{args.part}", text)
    print(text)


if __name__ == "__main__":
    main()
