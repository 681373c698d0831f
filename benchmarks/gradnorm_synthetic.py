"""The GradNorm paper's synthetic regression (Chen et al., ICML 2018, section 5): T tasks
f_i(x) = sigma_i tanh((B + eps_i) x) with x in R^250 and outputs in R^100; B has N(0, 10) entries
shared by all tasks, eps_i has N(0, 3.5) entries per task (variances), so the tasks are related but
their losses differ in scale by sigma_i^2. Trunk: 4 ReLU layers of width 100; one linear head per
task; squared error. Inputs x ~ N(0, I / 250) (the paper does not state the input scale; this one
keeps tanh out of full saturation).

Reported for equal weighting, uncertainty weighting and GradNorm (alpha 0.12, the paper's value for
this problem): the normalised test loss, sum_i L_i(test) / L_i(test at initialisation), the mean
over tasks of the test MSE divided by sigma_i^2, and for GradNorm the learned weights against sigma_i
with their Spearman rank correlation (the paper: weights come out inversely ordered to sigma_i).

    python benchmarks/gradnorm_synthetic.py [--seeds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig, fit_multitask  # noqa: E402
from taskshare.balancing import GradNorm  # noqa: E402

SIGMAS = [1.0, 2.0, 4.0, 8.0, 12.0, 20.0, 30.0, 45.0, 70.0, 100.0]


def make_data(seed: int, n_train: int = 8000, n_test: int = 2000):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(100, 250, generator=g) * 10 ** 0.5
    x = torch.randn(n_train + n_test, 250, generator=g) / 250 ** 0.5
    labels = {}
    for i, s in enumerate(SIGMAS):
        eps = torch.randn(100, 250, generator=g) * 3.5 ** 0.5
        labels[f"t{i}"] = s * torch.tanh(x @ (B + eps).T)
    split = lambda a, b: MultiTaskDataset(x[a:b], {k: v[a:b] for k, v in labels.items()})  # noqa: E731
    return split(0, n_train), split(n_train, n_train + n_test)


def make_model(tasks, seed: int) -> HardSharing:
    torch.manual_seed(seed)
    layers, width = [], 250
    for _ in range(4):
        layers += [nn.Linear(width, 100), nn.ReLU()]
        width = 100
    return HardSharing(nn.Sequential(*layers), tasks, in_features=100)


@torch.no_grad()
def test_losses(model, tasks, test) -> torch.Tensor:
    model.eval()
    out = model(test.x)
    model.train()
    return torch.stack([((out[t.name] - test.labels[t.name]) ** 2).mean() for t in tasks])


def spearman(a: list[float], b: list[float]) -> float:
    ra = torch.tensor(a).argsort().argsort().float()
    rb = torch.tensor(b).argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()))


def run(method: str, seed: int, epochs: int):
    tasks = [Task(f"t{i}", "regression", num_outputs=100) for i in range(len(SIGMAS))]
    train, test = make_data(seed)
    model = make_model(tasks, seed)
    initial = test_losses(model, tasks, test)
    balancer = GradNorm(num_tasks=len(tasks), alpha=0.12) if method == "gradnorm" else method
    config = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, weight_decay=0.0, min_steps=0, progress=False,
                         device="cpu", seed=seed)
    fit_multitask(model, tasks, train, None, config, balancer=balancer)
    final = test_losses(model, tasks, test)
    sig2 = torch.tensor(SIGMAS) ** 2
    weights = balancer.loss_weights.detach().tolist() if method == "gradnorm" else None
    return float((final / initial).sum()), float((final / sig2).mean()), weights


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [f"Measured on {machine()}; T = {len(SIGMAS)} tasks, sigma = {SIGMAS}; 8,000 training and 2,000 test "
             f"points, Adam lr 0.001, batch 100, {args.epochs} epochs; mean ± standard deviation over "
             f"{args.seeds} seeds (data and initialisation both change with the seed).", "",
             "| method | normalised test loss, sum_i L_i / L_i(0) | mean test MSE / sigma_i^2 |", "|---|---|---|"]
    gradnorm_weights = []
    for method in ("equal", "uncertainty", "gradnorm"):
        ratios, scaled = [], []
        for seed in range(args.seeds):
            r, s, w = run(method, seed, args.epochs)
            ratios.append(r)
            scaled.append(s)
            if w is not None:
                gradnorm_weights.append(w)
            print(method, seed, r, s, w, flush=True)
        lines.append(f"| {method} | {statistics.mean(ratios):.3f} ± {statistics.stdev(ratios):.3f} | "
                     f"{statistics.mean(scaled):.4f} ± {statistics.stdev(scaled):.4f} |")
    mean_w = [statistics.mean(ws) for ws in zip(*gradnorm_weights)]
    rho = [spearman(w, SIGMAS) for w in gradnorm_weights]
    lines += ["", "GradNorm's learned weights (mean over seeds), by sigma_i:", "",
              "| sigma_i | " + " | ".join(f"{s:g}" for s in SIGMAS) + " |", "|---|" + "---|" * len(SIGMAS),
              "| weight | " + " | ".join(f"{w:.3f}" for w in mean_w) + " |", "",
              f"Spearman rank correlation of weights with sigma_i, per seed: {', '.join(f'{r:.3f}' for r in rho)} "
              f"(-1 = exactly inversely ordered)."]
    text = "\n".join(lines)
    write_section("gradnorm_synthetic", text)
    print(text)


if __name__ == "__main__":
    main()
