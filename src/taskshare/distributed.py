"""Training over several processes with PyTorch's own engine (launch with `torchrun`; gloo on CPU,
NCCL on GPU). Every process sees its shard of each global batch; gradients are averaged across
processes after every backward, so all replicas apply the identical update (what
DistributedDataParallel does, done here after the backward so that gradient-balancing methods can
all-reduce per-task gradients first). Only rank 0 prints progress and writes checkpoints."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def setup_from_env(backend: str | None = None) -> tuple[int, int]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the
    environment); a single process without them stays alone. NCCL when CUDA is present, else gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        with main_thread_signals():
            dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world()


def leave() -> None:
    """Leave the process group together (a barrier, then tear down); nothing when alone."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


@contextlib.contextmanager
def main_thread_signals():
    """Start the backend's threads with SIGTERM blocked, so a SIGTERM (a preemption, torchrun passing
    one on) reaches the Python thread that saves the run, never a communication thread in the middle
    of a transfer (which may abort the process)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def shard(index: Tensor) -> Tensor:
    """This process's contiguous share of a global batch's indices (all of them when alone)."""
    rank, size = world()
    if size == 1:
        return index
    per = -(-len(index) // size)
    return index[rank * per:(rank + 1) * per]


def average_gradients(params: Iterable[Tensor], share: float = 1.0) -> None:
    """Mean of every .grad across processes, each weighted by its process's `share` (see consensus),
    in one flat all-reduce: the gradient of the mean loss over the whole global batch."""
    rank, size = world()
    if size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    if share != 1.0:
        flat *= share
    _all_reduce(flat)
    flat /= size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_across(t: Tensor) -> Tensor:
    """A tensor's sum across processes (a copy; the input itself when alone)."""
    if world()[1] == 1:
        return t
    out = t.detach().clone()
    _all_reduce(out)
    return out


def mean_across(t: Tensor, share: float = 1.0) -> Tensor:
    """A tensor's mean across processes, each weighted by its `share` (a copy; the input itself when
    alone). For a per-sample mean computed on each shard, it is the mean over the global batch."""
    size = world()[1]
    return t if size == 1 else sum_across(t * share if share != 1.0 else t) / size


def _collective_device(t: Tensor) -> torch.device:
    """NCCL works on CUDA tensors only; gloo is run on CPU copies (it gathers no CUDA tensor)."""
    backend = dist.get_backend()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if backend == "gloo" else t.device


def _all_reduce(t: Tensor) -> None:
    """Sum `t` in place across processes, through the backend's device."""
    device = _collective_device(t)
    if t.device == device:
        dist.all_reduce(t)
        return
    moved = t.to(device)
    dist.all_reduce(moved)
    t.copy_(moved)


def _summed(values: Sequence[float], device: torch.device | str) -> list[float]:
    """Each value summed over processes, in one all-reduce (float64, exact for counts)."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    _all_reduce(t)
    return t.tolist()


def consensus(rows: int, flags: Sequence[bool] = (), device: torch.device | str = "cpu") -> tuple[float, list[bool]]:
    """One small all-reduce per step: this process's share of the global batch, rows * world /
    global rows (1 when the shards are equal; the last batch of an epoch seldom splits evenly), and
    each flag true where it is true on any process, so all take the same branch (a skipped step, a
    stop). Weighting each process's mean by its share makes the mean over processes the mean over the
    global batch. Alone: (1.0, the flags)."""
    size = world()[1]
    if size == 1:
        return 1.0, [bool(f) for f in flags]
    total, *raised = _summed([rows, *map(bool, flags)], device)
    return rows * size / max(total, 1.0), [v > 0 for v in raised]


def shares(counts: Sequence[int], device: torch.device | str = "cpu") -> list[float]:
    """For each count (rows, or one task's known labels, in this process's shard): count * world /
    its total over processes, in one all-reduce. A per-sample mean over the shard, weighted by its
    share, averages across processes to the mean over the global batch. 1.0 each when alone; 0.0 where
    the total is 0."""
    size = world()[1]
    if size == 1:
        return [1.0] * len(counts)
    return [c * size / total if total > 0 else 0.0 for c, total in zip(counts, _summed(counts, device))]


def rows_of(batch) -> int:
    """How many samples a batch holds: a tensor's length, or that of the first tensor inside."""
    if isinstance(batch, Tensor):
        return len(batch)
    if isinstance(batch, dict):
        return rows_of(next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and batch:
        return rows_of(batch[0])
    return 1


def span(n: int) -> range:
    """This process's contiguous part of range(n), for evaluation (all of it when alone). The parts
    of processes 0, 1, ... are in order, cover range(n) once and differ in length by one at most."""
    rank, size = world()
    return range(rank * n // size, (rank + 1) * n // size)


def evaluation_part(n: int) -> range | None:
    """The rows of an n-row evaluation this process runs when the processes split it (several of
    them, at least one row each; gather the results with gather_rows); None: run all n rows here."""
    return span(n) if 1 < world()[1] <= n else None


def gather_rows(t: Tensor) -> Tensor:
    """Every process's rows of `t`, concatenated in rank order (the input itself when alone); the
    parts may differ in length. Same device and dtype as `t`."""
    size = world()[1]
    if size == 1:
        return t
    device = _collective_device(t)
    local = t.detach().to(device)
    if local.dtype == torch.bool:
        return gather_rows(local.to(torch.uint8)).bool().to(t.device)
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([len(local)], device=device))
    longest = max(int(c) for c in counts)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:int(c)] for p, c in zip(parts, counts)]).to(t.device)
