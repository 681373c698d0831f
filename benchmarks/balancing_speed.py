"""Step time of gradient balancing as a ratio to equal weighting, on one thread, for two trunks and
T in {2, 10, 40}; taskshare side by side with torchjd (`pip install "torchjd[full]"`, the `bench`
extra) and LibMTL (`pip install --no-deps libmtl==1.1.5`: its pinned dependencies are years old), each
when installed.

- mlp: Linear(784,512)-ReLU-Linear(512,512)-ReLU, batch 256.
- cnn: Conv(1,16,3)-ReLU-Conv(16,32,3,stride 2)-ReLU-Conv(32,32,3,stride 2)-ReLU-Flatten on 28x28
  inputs, batch 32.
T linear heads to 10 classes.

    nice -n 10 python benchmarks/balancing_speed.py [--rounds 5] [--steps 2]
    nice -n 10 python benchmarks/balancing_speed.py --part engines --rounds 9 --steps 2   # CNN engines alone

Interleaved rounds: in every round each variant runs once, in a shuffled order, and each of its
timings (`--steps` steps, after one untimed step) is paired with an equal-weighting timing of as many
steps (also after one untimed step) taken just before it; a row is the median over rounds of these
per-round ratios. A loaded machine then slows both sides
of a ratio alike, and the row "equal weighting" (equal weighting timed against itself) shows the
noise that remains. floor: forward + T separate gradient computations on the trunk (what any
per-task-gradient method pays without batching or a kernel). SGD applies the update in every variant.
Left out to fit a loaded two-core machine (each ran 12-41x equal weighting at T=10 in an earlier run):
GradDrop at the parameter level, torchjd's ConFIG, LibMTL's GradVac.
"""
from __future__ import annotations

import argparse
import os
import random
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
from taskshare.train.balanced import BalancedStep, build_balancer  # noqa: E402

OURS = ["mgda", "upgrad", "pcgrad", "gradvac", "imtl_g", "dualproj", "aligned_mtl", "config", "cagrad", "nash_mtl",
        "fairgrad", "graddrop"]
REPRESENTATION = ["mgda", "upgrad", "graddrop"]
LOSS_WEIGHTING = ["uncertainty", "gradnorm", "famo"]
TS = (2, 10, 40)
# the dearest rows (12-41x equal weighting at T=10 in an earlier run), left out of the speed table to fit
# a loaded two-core machine; the memory table keeps its own list
SPEED_LEFT_OUT = {"taskshare graddrop", "torchjd config", "LibMTL gradvac"}
THEIRS = {"mgda": "MGDA", "upgrad": "UPGrad", "pcgrad": "PCGrad", "gradvac": "GradVac", "imtl_g": "IMTLG",
          "dualproj": "DualProj", "aligned_mtl": "AlignedMTL", "config": "ConFIG", "cagrad": "CAGrad",
          "nash_mtl": "NashMTL", "fairgrad": "FairGrad"}
THEIR_ARGS = {"CAGrad": lambda T: {"c": 0.5}, "NashMTL": lambda T: {"n_tasks": T}, "FairGrad": lambda T: {"alpha": 1.0}}
# LibMTL 1.1.5 (the version on PyPI): method, its backward() keyword arguments, representation level
LIBMTL = {"uw": ("UW", {}, False), "gradnorm": ("GradNorm", {"alpha": 1.5}, False),
          "pcgrad": ("PCGrad", {}, False), "mgda": ("MGDA", {"mgda_gn": "none"}, False),
          "cagrad": ("CAGrad", {"calpha": 0.5, "rescale": 1}, False), "gradvac": ("GradVac", {"beta": 0.5}, False),
          "imtl": ("IMTL", {}, False), "mgda, representation level": ("MGDA", {"mgda_gn": "none"}, True),
          "graddrop, representation level": ("GradDrop", {"leak": 0.0}, True)}


def make_trunk(kind: str) -> tuple[nn.Module, int, tuple[int, ...], int]:
    """(trunk, feature width, input shape, batch size)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU()), 512, (784,), 256
    if kind == "cnn":
        trunk = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                              nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        return trunk, 32 * 7 * 7, (1, 28, 28), 32
    raise ValueError(f"trunk must be 'mlp' or 'cnn', got {kind!r}")


def setup(T: int, trunk: str = "mlp", seed: int = 0):
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", num_classes=10) for i in range(T)]
    net, width, shape, batch = make_trunk(trunk)
    model = HardSharing(net, tasks, in_features=width)
    x = torch.randn(batch, *shape)
    ys = {t.name: torch.randint(0, 10, (batch,)) for t in tasks}
    return model, tasks, x, ys


def clock(step, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def interleaved(steps: dict, rounds: int, per: int, seed: int = 0) -> tuple[dict[str, list[float]], list[float], dict]:
    """Per-round ratios to equal weighting: every round runs each variant once in a shuffled order, each
    timing paired with an equal-weighting timing taken just before it. Also the equal step's seconds and
    the variants that failed (warm-up included), with their error."""
    rng = random.Random(seed)
    base = steps["equal weighting"]
    failures, ratios, base_s = {}, {}, []
    for label, step in steps.items():   # warm-up; a peer method that cannot run this setup is reported
        try:
            step()
        except Exception as err:
            failures[label] = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
    live = [label for label in steps if label not in failures]
    for _ in range(rounds):
        rng.shuffle(live)
        for label in live:
            # one untimed step before each timing: both sides are timed warm (without it, equal weighting
            # timed right after its own baseline ran warm against a cold baseline and read 0.8x)
            base()
            b = clock(base, per)
            steps[label]()
            ratios.setdefault(label, []).append(clock(steps[label], per) / b)
            base_s.append(b)
    return ratios, base_s, failures


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


def make_steps(T: int, libmtl: bool = True, trunk: str = "mlp"):
    model, tasks, x, ys = setup(T, trunk)
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

    def ours(name: str, representation: bool = False, engine: str = "auto"):
        runner = BalancedStep(build_balancer(name, T), tasks, model, representation, engine=engine)

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
    if trunk == "cnn":   # the two other ways to the per-task gradients of convolutions
        steps["taskshare upgrad, engine=kernel (Conv2d kernel)"] = ours("upgrad", engine="kernel")
        steps["taskshare upgrad, engine=batched (is_grads_batched)"] = ours("upgrad", engine="batched")
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


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def speed_table(rounds: int, per: int, trunks: list[str], ts: list[int], publish=None) -> str:
    """The table; `publish(text)` is called after every (trunk, T) with the columns done so far."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    cells: dict[str, dict[tuple[str, int], str]] = {}
    failed: dict[str, list[str]] = {}
    notes = []
    done = []
    for T in ts:            # both trunks at small T first: an interrupted run still compares them
        for trunk in trunks:
            steps = {k: v for k, v in make_steps(T, trunk=trunk).items() if k not in SPEED_LEFT_OUT}
            ratios, base_s, failures = interleaved(steps, rounds, per, seed=T)
            for label in steps:
                if label in failures:
                    cells.setdefault(label, {})[trunk, T] = "fails"
                    failed.setdefault(label, []).append(f"{trunk} T={T}")
                    failed.setdefault(label + " error", [failures[label]])
                else:
                    cells.setdefault(label, {})[trunk, T] = f"{statistics.median(ratios[label]):.2f}x"
                print(f"{trunk} T={T} {label}: {cells[label][trunk, T]}", flush=True)
            lo, hi = quartiles(ratios["equal weighting"])
            notes.append(f"{trunk} T={T}: {1000 * statistics.median(base_s):.1f} ms, equal/equal quartiles "
                         f"{lo:.2f}-{hi:.2f}")
            done.append((trunk, T))
            if publish is not None:
                publish(render(cells, failed, notes, done, trunks, ts, rounds, per, load_before, started))
    return render(cells, failed, notes, done, trunks, ts, rounds, per, load_before, started)


def render(cells, failed, notes, done, trunks, ts, rounds, per, load_before, started) -> str:
    minutes = (time.perf_counter() - started) / 60
    load_after = os.getloadavg()
    cols = [(trunk, T) for trunk in trunks for T in ts if (trunk, T) in done]
    lines = [f"Measured on {machine()}, {os.cpu_count()} cores shared with other jobs: load average "
             f"{load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end ({minutes:.0f} minutes). "
             f"Median over {rounds} interleaved rounds of the per-round ratio to an equal-weighting timing "
             f"({per} steps each side) taken just before it. Equal weighting per step and the spread of "
             f"equal weighting timed against itself (25th-75th percentile of the per-round ratios): "
             + "; ".join(notes) + ".", "",
             "| | " + " | ".join(f"{trunk.upper()} T={T}" for trunk, T in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for label, by in cells.items():
        lines.append(f"| {label} | " + " | ".join(by.get(c, "") for c in cols) + " |")
    for label in [k for k in failed if not k.endswith(" error")]:   # one line per failing row, every setting named
        lines.append("")
        lines.append(f"{label} fails at {', '.join(failed[label])}: {failed[label + ' error'][0]}")
    return "\n".join(lines)


ENGINES = ["equal weighting", "taskshare upgrad", "taskshare upgrad, engine=kernel (Conv2d kernel)",
           "taskshare upgrad, engine=batched (is_grads_batched)"]


def engines_table(rounds: int, per: int, ts: list[int]) -> str:
    """The CNN trunk's three ways to per-task gradients, alone (more rounds than the full table)."""
    load_before, started = os.getloadavg(), time.perf_counter()
    rows: dict[str, list[str]] = {label: [] for label in ENGINES}
    for T in ts:
        steps = make_steps(T, libmtl=False, trunk="cnn")
        ratios, _, _ = interleaved({k: steps[k] for k in ENGINES}, rounds, per, seed=T)
        for label in ENGINES:
            lo, hi = quartiles(ratios[label])
            rows[label].append(f"{statistics.median(ratios[label]):.2f}x ({lo:.2f}-{hi:.2f})")
            print(f"cnn T={T} {label}: {rows[label][-1]}", flush=True)
    lines = [f"Measured on {machine()}, {os.cpu_count()} cores shared with other jobs: load average "
             f"{load_before[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
             f"({(time.perf_counter() - started) / 60:.0f} minutes). CNN trunk, UPGrad; median (25th-75th "
             f"percentile) over {rounds} interleaved rounds of the ratio to equal weighting, {per} steps each "
             f"side.", "", "| | " + " | ".join(f"T={T}" for T in ts) + " |", "|---" * (len(ts) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["speed", "memory", "engines"], default="speed")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per timing, each side of a ratio")
    parser.add_argument("--trunks", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--tasks", nargs="+", type=int, default=list(TS))
    parser.add_argument("--no-write", action="store_true", help="print only (a trial run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "memory":
        text = memory_table()
        write_section("balancing_memory", text)
        print(text)
        return
    if args.part == "engines":
        text = engines_table(args.rounds, args.steps, args.tasks)
        if not args.no_write:
            write_section("balancing_conv_engines", text)
        print(text)
        return
    text = speed_table(args.rounds, args.steps, args.trunks, args.tasks,
                       None if args.no_write else lambda t: write_section("balancing_speed", t))
    print(text)


if __name__ == "__main__":
    main()
