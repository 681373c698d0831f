"""Training over several processes with PyTorch's own engine (launch with `torchrun`; gloo on CPU,
NCCL on GPU). Every process sees its shard of each global batch; gradients are averaged across
processes after every backward, so all replicas apply the identical update (what
DistributedDataParallel does, done here after the backward so that gradient-balancing methods can
all-reduce per-task gradients first). Only rank 0 prints progress and writes checkpoints."""
from __future__ import annotations

import os
from typing import Iterable

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
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world()


def shard(index: Tensor) -> Tensor:
    """This process's contiguous share of a global batch's indices (all of them when alone)."""
    rank, size = world()
    if size == 1:
        return index
    per = -(-len(index) // size)
    return index[rank * per:(rank + 1) * per]


def average_gradients(params: Iterable[Tensor]) -> None:
    """Mean of every .grad across processes, in one flat all-reduce."""
    rank, size = world()
    if size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
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
    dist.all_reduce(out)
    return out


def mean_across(t: Tensor) -> Tensor:
    """A tensor's mean across processes (a copy; the input itself when alone)."""
    size = world()[1]
    return t if size == 1 else sum_across(t) / size
