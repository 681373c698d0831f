"""MMoE's synthetic experiment (Ma et al., KDD 2018, section 4): two regression tasks whose relatedness
is set by construction. u1, u2 orthonormal in R^d; w1 = c u1, w2 = c (p u1 + sqrt(1 - p^2) u2);
x ~ N(0, I_d); y_i = w_i . x + sum_{j=1..m} sin(alpha_j w_i . x + beta_j) + eps_i, eps_i ~ N(0, 0.01).
d = 100, c = 1, m = 10 as in the paper; alpha_j, beta_j ~ N(0, 1), drawn once per seed (the paper
draws them at random without stating the law). The published finding: MMoE's advantage over hard
sharing (a shared bottom) grows as the correlation p falls.

Models at about the same size: hard sharing, one shared ReLU layer of 128 units; MMoE, 8 experts of
one ReLU layer of 16 units and a softmax gate per task; PLE, 2 levels, each with 4 shared experts
and 2 per task of 16 units (the second level's experts read 16 features). Linear heads; Adam
(AdamW without decay) at 2e-3, the paper's rate, cosine schedule; no early stopping (the paper
compares training losses). Reported: the mean over both tasks of the final training MSE and the
test MSE (2,000 fresh examples), mean and spread over seeds.

    python benchmarks/mmoe_synthetic.py [--seeds 3] [--epochs 20] [--n-train 10000] [--batch-size 128]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig, fit_multitask  # noqa: E402
from taskshare.models import MMoE, PLE  # noqa: E402

CORRELATIONS = [1.0, 0.9, 0.5, 0.0]
TASKS = [Task("y1", "regression"), Task("y2", "regression")]
D, M = 100, 10


def make_data(p: float, seed: int, n_train: int, n_test: int = 2000):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(D, 2, generator=g))
    w1, w2 = u[:, 0], p * u[:, 0] + (1 - p * p) ** 0.5 * u[:, 1]
    alpha, beta = torch.randn(M, generator=g), torch.randn(M, generator=g)
    x = torch.randn(n_train + n_test, D, generator=g)

    def label(w):
        s = x @ w
        return s + torch.sin(alpha * s.unsqueeze(1) + beta).sum(1) + 0.1 * torch.randn(len(x), generator=g)

    y1, y2 = label(w1), label(w2)
    corr = float(torch.corrcoef(torch.stack([y1, y2]))[0, 1])
    split = lambda a, b: MultiTaskDataset(x[a:b], {"y1": y1[a:b], "y2": y2[a:b]})  # noqa: E731
    return split(0, n_train), split(n_train, n_train + n_test), corr


def expert(width_in: int = D) -> nn.Module:
    return nn.Sequential(nn.Linear(width_in, 16), nn.ReLU())


def build(mode: str, seed: int, example: torch.Tensor) -> nn.Module:
    torch.manual_seed(seed)
    if mode == "hard":
        return HardSharing(nn.Sequential(nn.Linear(D, 128), nn.ReLU()), TASKS, in_features=128)
    if mode == "mmoe":
        return MMoE(expert, TASKS, example, num_experts=8)
    return PLE(lambda: nn.Sequential(expert(D), expert(16)), TASKS, example, shared_experts=4, task_experts=2)


@torch.no_grad()
def mse(model, data) -> float:
    model.eval()
    out = model(data.x)
    model.train()
    return statistics.mean(float(((out[t.name].reshape(-1) - data.labels[t.name]) ** 2).mean()) for t in TASKS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    modes = ["hard", "mmoe", "ple"]
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=2e-3, weight_decay=0.0, min_steps=0, progress=False,
                      device="cpu", seed=0)
    rows, gaps, started = [], {}, time.perf_counter()
    for p in CORRELATIONS:
        train_l, test_l, corrs = {m: [] for m in modes}, {m: [] for m in modes}, []
        for seed in range(args.seeds):
            train, test, corr = make_data(p, seed, args.n_train)
            corrs.append(corr)
            for mode in modes:
                model = build(mode, seed, train.x[:2])
                fit_multitask(model, TASKS, train, None, cfg)
                train_l[mode].append(mse(model, train))
                test_l[mode].append(mse(model, test))
                print(f"p={p} seed={seed} {mode}: train {train_l[mode][-1]:.4f} test {test_l[mode][-1]:.4f}", flush=True)
        params = {m: sum(q.numel() for q in build(m, 0, train.x[:2]).parameters()) for m in modes}
        gaps[p] = [h - m for h, m in zip(test_l["hard"], test_l["mmoe"])]

        def cell(v):
            return f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}"

        rows.append(f"| {p} | {statistics.mean(corrs):.2f} | " + " | ".join(
            f"{cell(train_l[m])} / {cell(test_l[m])}" for m in modes) +
            f" | {statistics.mean(gaps[p]):+.4f} ± {statistics.stdev(gaps[p]) if len(gaps[p]) > 1 else 0:.4f} |")
    means = [statistics.mean(gaps[p]) for p in CORRELATIONS]
    grows = all(b >= a for a, b in zip(means, means[1:]))
    spread = max(statistics.stdev(gaps[p]) if len(gaps[p]) > 1 else 0.0 for p in CORRELATIONS)
    verdict = ("reproduced: MMoE's test-MSE advantage over hard sharing grows at every step as the correlation falls"
               if grows else
               "not reproduced as a monotone trend: MMoE's test-MSE advantage over hard sharing by correlation is "
               + ", ".join(f"{p}: {g:+.4f}" for p, g in zip(CORRELATIONS, means)))
    verdict += (f"; the seed-to-seed spread of that advantage (sd up to {spread:.4f}) is "
                + ("larger than its change across correlations, so these seeds cannot settle the trend"
                   if spread > max(means) - min(means) else "smaller than its change across correlations"))
    lines = [
        "## MMoE's synthetic experiment: task correlation set by construction",
        "",
        f"`python benchmarks/mmoe_synthetic.py --seeds {args.seeds} --epochs {args.epochs} --n-train {args.n_train} "
        f"--batch-size {args.batch_size}` "
        f"({machine()}; {time.perf_counter() - started:.0f} s). Two regression tasks (Ma et al. 2018, section 4: "
        f"d = {D}, m = {M}, noise variance 0.01); p is the cosine between the two tasks' weight vectors, "
        f"'label corr.' the measured Pearson correlation of the labels. Cells: mean over both tasks of the "
        f"training MSE / test MSE (2,000 fresh examples), mean ± sd over {args.seeds} seeds; last column: hard "
        f"sharing's test MSE minus MMoE's on the same data (positive: MMoE better), mean ± sd over seeds. Parameters: "
        + ", ".join(f"{m} {params[m]:,}" for m in modes) + f"; {args.epochs} epochs of {args.n_train:,} examples, "
        f"batches of {args.batch_size}, no early stopping.",
        "",
        "| p | label corr. | hard (train / test) | MMoE (train / test) | PLE (train / test) | hard - MMoE (test) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Finding: {verdict}.",
    ]
    write_section("mmoe_synthetic", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
