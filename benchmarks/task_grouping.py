"""Task grouping and capacity, on synthetic tasks with a known structure.

Grouping: 6 regression tasks on 20-d inputs in two clusters; the tasks of a cluster share a 4-d
latent (y_k = a_k . tanh(W_c x) + noise, W_c per cluster, a_k = a_c + 0.3 e_k per task, so a
cluster's tasks read similar directions of its latent); the clusters' latents are unrelated. A hard-sharing MLP (20-32-8, ReLU) trains jointly for 8 epochs while the lookahead
affinities (Fifty et al. 2021) are measured; the proposed groups should be the two clusters.

Capacity: the 3 tasks of one cluster plus 3 of the other, single-task models against hard sharing at
trunk widths 2, 4, 8, 32 and 128 (the bottleneck width): where does sharing stop hurting?

    python benchmarks/task_grouping.py      # about a minute on 1 CPU thread
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_section  # noqa: E402

from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig  # noqa: E402
from taskshare.advise import affinity_svg, capacity_check, propose_groups, task_affinity  # noqa: E402

NAMES = ["a1", "a2", "a3", "b1", "b2", "b3"]


def make_data(seed: int, n: int = 3000):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    latents = {c: torch.tanh(x @ torch.randn(20, 4, generator=g) / 20 ** 0.5 * 2) for c in "ab"}
    base = {c: torch.randn(4, generator=g) for c in "ab"}
    labels = {name: latents[name[0]] @ (base[name[0]] + 0.3 * torch.randn(4, generator=g))
              + 0.1 * torch.randn(n, generator=g) for name in NAMES}
    cut = [int(n * 0.7), int(n * 0.85)]
    part = lambda a, b: MultiTaskDataset(x[a:b], {k: v[a:b] for k, v in labels.items()})  # noqa: E731
    return part(0, cut[0]), part(cut[0], cut[1]), part(cut[1], n)


def trunk(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, width), nn.ReLU())


def main() -> None:
    torch.set_num_threads(1)
    tasks = [Task(n, "regression") for n in NAMES]
    lines = [f"Measured on {machine()}.", "", "### Grouping (3 seeds)", ""]
    recovered, free_ok = [], []
    for seed in range(3):
        train, _, _ = make_data(seed)
        torch.manual_seed(seed)
        model = HardSharing(trunk(8), tasks, in_features=8)
        affinity = task_affinity(model, tasks, train, TrainConfig(epochs=8, batch_size=64, lr=3e-3, seed=seed,
                                                                   device="cpu"))
        groups = propose_groups(affinity, max_groups=2)      # a budget of two trunks, as in TAG
        free = propose_groups(affinity)
        recovered.append(sorted(map(sorted, groups)) == [["a1", "a2", "a3"], ["b1", "b2", "b3"]])
        free_ok.append(sorted(map(sorted, free)) == [["a1", "a2", "a3"], ["b1", "b2", "b3"]])
        M = affinity.tensor()
        within = statistics.mean(float(M[i, j]) for i in range(6) for j in range(6) if i != j and (i < 3) == (j < 3))
        across = statistics.mean(float(M[i, j]) for i in range(6) for j in range(6) if (i < 3) != (j < 3))
        lines.append(f"- seed {seed}: groups with a budget of 2 trunks {groups}; without a budget {free}; mean affinity within clusters {within * 100:+.2f}, "
                     f"across {across * 100:+.2f} (x100, {affinity.steps} steps)")
        if seed == 0:
            (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
            (ROOT / "benchmarks" / "results" / "task_affinity.svg").write_text(affinity_svg(affinity))
    lines += ["", f"Clusters recovered in {sum(recovered)} of 3 seeds with a budget of 2 trunks, {sum(free_ok)} of 3 "
              "without a budget (there a task whose affinities are weak is sometimes left alone). Heatmap of seed 0: "
              "`benchmarks/results/task_affinity.svg`.", "", "### Capacity (seed 0)", ""]
    train, val, test = make_data(0)
    config = TrainConfig(epochs=30, batch_size=64, lr=3e-3, seed=0, device="cpu", progress=False)
    report = capacity_check(trunk, [2, 4, 8, 32, 128], tasks, train, val, test, config)
    lines += ["| trunk width | delta_m of hard sharing (%) | mean R2, one model per task | mean R2, hard sharing | "
              "parameters (single / hard) |", "|---|---|---|---|---|"]
    for r in report.rows:
        lines.append(f"| {r.width} | {r.delta_m:+.2f} | {statistics.mean(r.single.values()):.3f} | "
                     f"{statistics.mean(r.hard.values()):.3f} | {r.params_single} / {r.params_hard} |")
    lines += ["", report.summary()]
    text = "\n".join(lines)
    write_section("task_grouping", text)
    print(text)


if __name__ == "__main__":
    main()
