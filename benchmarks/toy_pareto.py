"""The two-task toy problem of CAGrad (Liu et al., NeurIPS 2021), also used by Nash-MTL and FAMO:
x in R^2, two losses built from a log-valley (x2 > 0) and two quadratics (x2 < 0); its Pareto set is
the segment between the quadratics' minima, x2 = -8, -7 <= x1 <= 7. Every method starts from the
published start points (the union of those papers' lists) and runs Adam on the combined update
(lr 0.01 for 3,000 steps by default, about 5 minutes on 2 cores; the papers use lr 0.001 for
35,000-100,000 steps, which the flags reproduce at 10-30 times the run time). Reported: which methods end Pareto-stationary on
the Pareto set from each start.

    python benchmarks/toy_pareto.py [--steps 3000] [--lr 0.01] [--jobs 2]

"Reached" means: the final point lies near the segment (x2 < -7.5, |x1| <= 7.05) and is Pareto-
stationary (the min-norm element of the hull of the two gradients has norm < 0.01). Loss-weighting
methods that take logs or ratios of losses (log_scale, gls, dwa, famo, imtl_l, uncertainty) see the
losses plus 21, which makes them positive (the losses reach -20); a constant shift changes nothing
for the others.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

from taskshare.balancing._qp import min_norm_simplex  # noqa: E402
from taskshare.balancing import build_balancer  # noqa: E402

FLOOR = 5e-6
STARTS = [(-8.5, 7.5), (-8.5, -5.0), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0)]
METHODS = ["equal", "mgda", "pcgrad", "cagrad", "nash_mtl", "famo", "upgrad", "dualproj", "imtl_g", "aligned_mtl",
           "config", "fairgrad", "gradvac", "log_scale", "gls", "rlw", "dwa", "uncertainty", "imtl_l"]
SHIFT = 21.0


def losses(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[0], x[1]
    valley1 = torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), FLOOR).log() + 6
    valley2 = torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), FLOOR).log() + 6
    up = torch.clamp(torch.tanh(x2 * 0.5), 0)
    bowl1 = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    bowl2 = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    down = torch.clamp(torch.tanh(-x2 * 0.5), 0)
    return torch.stack([valley1 * up + bowl1 * down, valley2 * up + bowl2 * down])


def jacobian(x: torch.Tensor) -> torch.Tensor:
    f = losses(x)
    return torch.stack([torch.autograd.grad(f[i], x, retain_graph=True)[0] for i in range(2)])


def run(name: str, start: tuple[float, float], steps: int, lr: float = 1e-3, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    method = build_balancer(name, 2).double()
    opt = torch.optim.Adam([x], lr=lr)
    history, epoch = [], []
    for step in range(steps):
        opt.zero_grad()
        if method.needs == "losses":
            f = losses(x) + SHIFT
            epoch.append(f.detach())
            if len(epoch) == 100:              # an "epoch" of 100 steps for DWA
                history.append(torch.stack(epoch).mean(0))
                epoch = []
            total = method.task_loss(f, step, history)
            params = [x, *method.parameters()]
            grads = torch.autograd.grad(total, params)
            x.grad = grads[0]
            with torch.no_grad():
                for p, g in zip(params[1:], grads[1:]):
                    p -= lr * g
        else:
            x.grad = method.direction(jacobian(x))
        opt.step()
        if method.observes_step:
            with torch.no_grad():
                method.observe(losses(x) + SHIFT)
    return x.detach()


def reached(x: torch.Tensor) -> bool:
    xr = x.clone().requires_grad_(True)
    J = jacobian(xr)
    w = min_norm_simplex(J @ J.T)
    stationary = float((w @ J).norm()) < 1e-2
    return bool(stationary and float(x[1]) < -7.5 and abs(float(x[0])) <= 7.05)


def _row(job: tuple[str, int, float]) -> list[torch.Tensor]:
    torch.set_num_threads(1)
    name, steps, lr = job
    return [run(name, start, steps, lr) for start in STARTS]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--jobs", type=int, default=2)  # processes; one method each at a time
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [f"Measured on {machine()}; Adam lr {args.lr}, {args.steps} steps from each start. Cell: final (x1, x2), "
             f"and a check mark when the method reached the Pareto set from that start.", "",
             "| method | " + " | ".join(f"start {s}" for s in STARTS) + " | reached |",
             "|---|" + "---|" * (len(STARTS) + 1)]
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:   # spawn: no fork of torch's threads
        finals = pool.map(_row, [(name, args.steps, args.lr) for name in METHODS], chunksize=1)
    for name, xs in zip(METHODS, finals):
        cells, hits = [], 0
        for x in xs:
            ok = reached(x)
            hits += ok
            cells.append(f"({float(x[0]):.2f}, {float(x[1]):.2f}){' ✓' if ok else ''}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {hits}/{len(STARTS)} |")
        print(lines[-1], flush=True)
    publish("toy_pareto", lines)


if __name__ == "__main__":
    main()
