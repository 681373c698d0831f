"""Step time of gradient balancing as a ratio to equal weighting, measured in one run on 1 thread:
trunk Linear(784,512)-ReLU-Linear(512,512)-ReLU, T linear heads to 10 classes, batch 256, T in {2, 10};
taskshare side by side with torchjd (`pip install torchjd`, when installed). Medians of 5 rounds.

    python benchmarks/balancing_speed.py

floor: forward + T separate gradient computations on the trunk (what any per-task-gradient method
must at least pay without batching). Each round times 20 steps after 3 warm-up steps; SGD applies
the update in every variant, so only the gradient work differs.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

from taskshare import HardSharing, Task  # noqa: E402
from taskshare.balancing import BALANCERS  # noqa: E402
from taskshare.train.balanced import BalancedStep  # noqa: E402

OURS = ["mgda", "upgrad", "pcgrad", "imtl_g", "dualproj", "aligned_mtl", "config", "cagrad", "nash_mtl", "fairgrad"]
THEIRS = {"mgda": "MGDA", "upgrad": "UPGrad", "pcgrad": "PCGrad", "imtl_g": "IMTLG", "dualproj": "DualProj",
          "aligned_mtl": "AlignedMTL", "config": "ConFIG", "cagrad": "CAGrad", "nash_mtl": "NashMTL",
          "fairgrad": "FairGrad"}
THEIR_ARGS = {"CAGrad": lambda T: {"c": 0.5}, "NashMTL": lambda T: {"n_tasks": T}, "FairGrad": lambda T: {"alpha": 1.0}}


def setup(T: int, seed: int = 0):
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", num_classes=10) for i in range(T)]
    trunk = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())
    model = HardSharing(trunk, tasks, in_features=512)
    x = torch.randn(256, 784)
    ys = {t.name: torch.randint(0, 10, (256,)) for t in tasks}
    return model, tasks, x, ys


def timed(step, rounds: int = 5, steps: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def make_steps(T: int):
    model, tasks, x, ys = setup(T)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    shared = list(model.trunk.parameters())

    def losses_of(out):
        return [F.cross_entropy(out[t.name], ys[t.name]) for t in tasks]

    def equal():
        opt.zero_grad(set_to_none=True)
        sum(losses_of(model(x))).backward()
        opt.step()

    def floor():
        opt.zero_grad(set_to_none=True)
        losses = losses_of(model(x))
        for loss in losses:
            torch.autograd.grad(loss, shared, retain_graph=True)
        opt.step()

    def ours(name: str, representation: bool = False):
        runner = BalancedStep(BALANCERS.get(name)(), tasks, model, representation)

        def step():
            opt.zero_grad(set_to_none=True)
            out = runner.forward(model, x, [t.name for t in tasks])
            parts = dict(zip([t.name for t in tasks], losses_of(out)))
            runner.backward(runner.total(parts), parts)
            opt.step()
        return step

    steps = {"equal weighting": equal, "floor: T gradients on the trunk": floor}
    for name in OURS:
        steps[f"taskshare {name}"] = ours(name)
    for name in ("mgda", "upgrad"):
        steps[f"taskshare {name}, representation level"] = ours(name, True)
    try:
        from torchjd import aggregation
        from torchjd.autojac import jac_to_grad, mtl_backward
    except ImportError:
        return steps
    for name, cls in THEIRS.items():
        agg = getattr(aggregation, cls)(**THEIR_ARGS.get(cls, lambda T: {})(T))

        def theirs(agg=agg):
            opt.zero_grad(set_to_none=True)
            z = model.forward_features(x)
            mtl_backward(losses_of(model.forward_heads(z)), features=z)
            jac_to_grad(shared, agg)
            opt.step()
        steps[f"torchjd {name}"] = theirs
    return steps


def main() -> None:
    torch.set_num_threads(1)
    results: dict[str, dict[int, float]] = {}
    for T in (2, 10):
        steps = make_steps(T)
        base = timed(steps["equal weighting"])
        for label, step in steps.items():
            results.setdefault(label, {})[T] = timed(step) / base
            print(f"T={T} {label}: {results[label][T]:.2f}x", flush=True)
        results.setdefault("equal weighting, ms per step", {})[T] = base * 1000
    lines = [f"Measured on {machine()}; ratios to equal weighting in the same run, medians of 5 rounds of 20 steps.", "",
             "| | T=2 | T=10 |", "|---|---|---|"]
    for label, by_t in results.items():
        if label.endswith("ms per step"):
            lines.append(f"| {label} | {by_t[2]:.2f} | {by_t[10]:.2f} |")
        else:
            lines.append(f"| {label} | {by_t[2]:.2f}x | {by_t[10]:.2f}x |")
    text = "\n".join(lines)
    write_section("balancing_speed", text)
    print(text)


if __name__ == "__main__":
    main()
