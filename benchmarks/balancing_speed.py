"""Step time of gradient balancing as a ratio to equal weighting, measured in one run on 1 thread:
trunk Linear(784,512)-ReLU-Linear(512,512)-ReLU, T linear heads to 10 classes, batch 256, T in {2, 10};
taskshare side by side with torchjd (`pip install torchjd`) and LibMTL (`pip install libmtl==1.1.5 --no-deps`),
each when installed. Medians of 5 rounds.

    python benchmarks/balancing_speed.py

floor: forward + T separate gradient computations on the trunk (what any per-task-gradient method
must at least pay without batching). Each round times 20 steps after 3 warm-up steps; SGD applies
the update in every variant, so only the gradient work differs.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

from taskshare import HardSharing, Task  # noqa: E402
from taskshare.balancing import build_balancer  # noqa: E402
from taskshare.train.balanced import BalancedStep  # noqa: E402

OURS = ["mgda", "upgrad", "pcgrad", "gradvac", "imtl_g", "dualproj", "aligned_mtl", "config", "cagrad", "nash_mtl",
        "fairgrad", "graddrop"]
REPRESENTATION = ["mgda", "upgrad", "imtl_g", "dualproj", "pcgrad", "nash_mtl", "graddrop"]
LOSS_WEIGHTING = ["uncertainty", "dwa", "rlw", "gls", "imtl_l", "log_scale", "gradnorm", "famo"]
THEIRS = {"mgda": "MGDA", "upgrad": "UPGrad", "pcgrad": "PCGrad", "gradvac": "GradVac", "imtl_g": "IMTLG",
          "dualproj": "DualProj", "aligned_mtl": "AlignedMTL", "config": "ConFIG", "cagrad": "CAGrad",
          "nash_mtl": "NashMTL", "fairgrad": "FairGrad"}
THEIR_ARGS = {"CAGrad": lambda T: {"c": 0.5}, "NashMTL": lambda T: {"n_tasks": T}, "FairGrad": lambda T: {"alpha": 1.0}}
# LibMTL 1.1.5 (the version on PyPI): method, its backward() keyword arguments, representation level
LIBMTL = {"uw": ("UW", {}, False), "dwa": ("DWA", {"T": 2.0}, False), "gls": ("GLS", {}, False),
          "rlw": ("RLW", {"dist": "Normal"}, False), "gradnorm": ("GradNorm", {"alpha": 1.5}, False),
          "pcgrad": ("PCGrad", {}, False), "mgda": ("MGDA", {"mgda_gn": "none"}, False),
          "cagrad": ("CAGrad", {"calpha": 0.5, "rescale": 1}, False), "gradvac": ("GradVac", {"beta": 0.5}, False),
          "imtl": ("IMTL", {}, False), "mgda, representation level": ("MGDA", {"mgda_gn": "none"}, True),
          "imtl, representation level": ("IMTL", {}, True), "graddrop, representation level": ("GradDrop", {"leak": 0.0}, True)}


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


def import_libmtl():
    """LibMTL 1.1.5 imports torchvision.models.utils, removed from torchvision long ago; the benchmark
    provides that one function (torch.hub has it) before importing, and uses only the weighting classes."""
    import types
    if "torchvision.models.utils" not in sys.modules:
        shim = types.ModuleType("torchvision.models.utils")
        shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
        sys.modules["torchvision.models.utils"] = shim
    import LibMTL.weighting as weighting
    return weighting


def libmtl_step(cls, kwargs: dict, rep_grad: bool, model, tasks, x, ys, opt):
    """A LibMTL weighting class driven the way its Trainer drives it (shared parameters = the trunk)."""
    import numpy as np

    class Adapter(cls):
        def __init__(self):
            super().__init__()
            self.task_num, self.task_name, self.device, self.rep_grad = len(tasks), [t.name for t in tasks], x.device, rep_grad
            self.epoch, self.train_loss_buffer = 2, np.ones((len(tasks), 3))
            self.init_param()

        def get_share_params(self):
            return model.trunk.parameters()

        def zero_grad_share_params(self):
            model.trunk.zero_grad(set_to_none=False)

    method = Adapter()

    def step():
        opt.zero_grad(set_to_none=True)
        z = model.forward_features(x)
        if rep_grad:
            method.rep = z
            method.rep_tasks = {t.name: z.detach().clone().requires_grad_(True) for t in tasks}
            out = {t.name: model.heads[t.name](method.rep_tasks[t.name]) for t in tasks}
        else:
            out = model.forward_heads(z)
        losses = torch.stack([F.cross_entropy(out[t.name], ys[t.name]) for t in tasks])
        method.backward(losses, **kwargs)
        opt.step()
    return step


def make_steps(T: int, libmtl: bool = True):
    model, tasks, x, ys = setup(T)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    shared = list(model.trunk.parameters())
    names = [t.name for t in tasks]

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
        runner = BalancedStep(build_balancer(name, T), tasks, model, representation)

        def step():
            opt.zero_grad(set_to_none=True)
            out = runner.forward(model, x, names)
            parts = dict(zip(names, losses_of(out)))
            runner.backward(runner.total(parts), parts)
            opt.step()
            if runner.wants_after_step:
                runner.after_step(model, x, ys)
        return step

    steps = {"equal weighting": equal, "floor: T gradients on the trunk": floor}
    for name in LOSS_WEIGHTING:
        steps[f"taskshare {name}"] = ours(name)
    for name in OURS:
        steps[f"taskshare {name}"] = ours(name)
    for name in REPRESENTATION:
        steps[f"taskshare {name}, representation level"] = ours(name, True)
    try:
        from torchjd import aggregation
        from torchjd.autojac import jac_to_grad, mtl_backward
    except ImportError:
        aggregation = None
    for name, cls in THEIRS.items() if aggregation else ():
        agg = getattr(aggregation, cls)(**THEIR_ARGS.get(cls, lambda T: {})(T))

        def theirs(agg=agg):
            opt.zero_grad(set_to_none=True)
            z = model.forward_features(x)
            mtl_backward(losses_of(model.forward_heads(z)), features=z)
            jac_to_grad(shared, agg)
            opt.step()
        steps[f"torchjd {name}"] = theirs
    try:
        weighting = import_libmtl() if libmtl else None
    except ImportError:
        weighting = None
    for label, (cls, kwargs, rep) in LIBMTL.items() if weighting else ():
        steps[f"LibMTL {label}"] = libmtl_step(getattr(weighting, cls), kwargs, rep, model, tasks, x, ys, opt)
    return steps


def peak_memory(label: str, T: int) -> float:
    """MiB that 3 steps of `label` add to the peak resident set of a fresh process holding the model
    and the batch (Linux: the peak is reset through /proc/self/clear_refs after set-up)."""
    code = ("import re, sys, torch; sys.path.insert(0, %r); torch.set_num_threads(1);"
            "import balancing_speed as b; steps = b.make_steps(%d); step = steps[%r];"
            "status = lambda key: int(re.search(key + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
            "open('/proc/self/clear_refs', 'w').write('5'); before = status('VmRSS');"
            "[step() for _ in range(3)]; print(status('VmHWM') - before)"
            % (str(Path(__file__).resolve().parent), T, label))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


MEMORY_ROWS = ["equal weighting", "floor: T gradients on the trunk", "taskshare mgda", "taskshare upgrad",
               "taskshare nash_mtl", "taskshare graddrop", "taskshare mgda, representation level", "taskshare gradnorm",
               "taskshare famo", "torchjd mgda", "torchjd upgrad", "torchjd nash_mtl", "LibMTL mgda", "LibMTL pcgrad",
               "LibMTL mgda, representation level"]


def memory_table() -> str:
    lines = [f"Measured on {machine()}; MiB that 3 training steps add to the peak resident memory of a fresh "
             "process that holds the model and the batch (batch 256; the trunk has 0.67 M parameters, so one "
             "task's gradient is 2.6 MB).", "", "| | peak MiB added, T=2 | T=10 |", "|---|---|---|"]
    for label in MEMORY_ROWS:
        try:
            lines.append(f"| {label} | {peak_memory(label, 2):.1f} | {peak_memory(label, 10):.1f} |")
        except subprocess.CalledProcessError:
            lines.append(f"| {label} | not installed | |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["speed", "memory"], default="speed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "memory":
        text = memory_table()
        write_section("balancing_memory", text)
        print(text)
        return
    results: dict[str, dict[int, float]] = {}
    base_ms: dict[int, float] = {}
    failures: dict[str, str] = {}
    for T in (2, 10):
        steps = make_steps(T)
        base = timed(steps["equal weighting"])
        base_ms[T] = base * 1000
        for label, step in steps.items():
            try:
                results.setdefault(label, {})[T] = timed(step) / base
            except Exception as err:  # a peer method that cannot run this setup is reported, not hidden
                failures[label] = f"fails at T={T}: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
                results.setdefault(label, {})[T] = float("nan")
            print(f"T={T} {label}: {results[label][T]:.2f}x", flush=True)
    floor = {T: results["floor: T gradients on the trunk"][T] for T in (2, 10)}
    lines = [f"Measured on {machine()}; step time as a ratio to equal weighting in the same run, medians of 5 rounds "
             f"of 20 steps (equal weighting: {base_ms[2]:.2f} ms per step at T=2, {base_ms[10]:.2f} ms at T=10).", "",
             "| | T=2 | T=2 / floor | T=10 | T=10 / floor |", "|---|---|---|---|---|"]
    for label, by_t in results.items():
        if label in failures:
            lines.append(f"| {label} | {failures[label]} | | | |")
            continue
        lines.append(f"| {label} | {by_t[2]:.2f}x | {by_t[2] / floor[2]:.2f} | {by_t[10]:.2f}x | {by_t[10] / floor[10]:.2f} |")
    text = "\n".join(lines)
    write_section("balancing_speed", text)
    print(text)


if __name__ == "__main__":
    main()
