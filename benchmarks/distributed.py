"""Steps per second with 1 and 2 processes on CPU (gloo, one thread each), same global batch (each of
2 processes trains on half of every batch), for the MNIST-1D MLP and the digit-scenes CNN (hard
sharing, 4 tasks). The same code runs under torchrun; see the README's "Scaling out".

    python benchmarks/distributed.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

EPOCHS = 2
REPEATS = 5   # medians of alternated runs


def job(name: str):
    """(train function) for one model; returns the number of optimizer steps it takes."""
    from torch import nn

    from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig, fit, fit_multitask
    from taskshare.models import build_model
    cfg = TrainConfig(epochs=EPOCHS, batch_size=128, min_steps=0, progress=False, device="cpu")
    if name == "mnist1d":
        from taskshare.data.mnist1d import generate
        d = generate(10_000)
        x, y = torch.as_tensor(d["x"]), torch.as_tensor(d["y"])
        model = build_model("mlp", 40, 10, hidden=[256, 256, 256])
        return lambda: fit(model, Task("digit", num_classes=10), (x, y), None, cfg), -(-len(x) // 128) * EPOCHS
    from taskshare.data.scenes import make_scenes, sklearn_digits
    images, labels = sklearn_digits()
    scenes = make_scenes(images, labels, 2400, 24, [0, 1, 2, 3], missing=0.3, seed=0)
    tasks = [Task(n, "binary") for n in scenes.labels]
    data = MultiTaskDataset(scenes.x, scenes.labels)
    trunk = build_model("cnn2d", 1, 2, channels=[8, 16, 32]).features
    model = HardSharing(trunk, tasks, data.x[:2] if data.x.dim() == 4 else data.x[:2, None])
    return lambda: fit_multitask(model, tasks, data, None, cfg), -(-len(data) // 128) * EPOCHS


def worker(rank: int, world: int, store: str, name: str, out: str) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.manual_seed(0)
    run, steps = job(name)
    run()                                      # warm-up: one-time costs (allocations, kernels) off the clock
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    if rank == 0:
        Path(out).write_text(f"{steps / seconds}")
    if world > 1:
        from taskshare.distributed import leave
        leave()                                # a barrier, then tear down together


def measure(name: str, world: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/rate"
        if world == 1:
            worker(0, 1, "", name, out)
        else:
            mp.spawn(worker, args=(world, f"{tmp}/store", name, out), nprocs=world, join=True)
        return float(Path(out).read_text())


def main() -> None:
    torch.set_num_threads(1)
    lines = [f"Measured on {machine()}, one thread per process; global batch 128, {EPOCHS} epochs timed after "
             f"{EPOCHS} warm-up epochs, gloo; "
             f"medians of {REPEATS} alternated runs.", "",
             "| model | 1 process, steps/s | 2 processes, steps/s | speed-up |", "|---|---|---|---|"]
    for name, label in (("mnist1d", "MNIST-1D MLP 256x3 (10,000 signals)"),
                        ("scenes", "digit scenes CNN, hard sharing, 4 tasks (2,400 canvases)")):
        ones, twos = [], []
        for _ in range(REPEATS):               # alternated, so a slow spell of the machine hits both
            ones.append(measure(name, 1))
            twos.append(measure(name, 2))
        one, two = statistics.median(ones), statistics.median(twos)
        lines.append(f"| {label} | {one:.1f} | {two:.1f} | {two / one:.2f}x |")
        print(lines[-1], flush=True)
    publish("distributed", lines)


if __name__ == "__main__":
    main()
