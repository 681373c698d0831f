"""Weights that make several processes' per-task means add up to the global batch's means."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ..distributed import shares
from ..tasks import Task


def label_weighted(parts: Mapping[str, Tensor], ys: Mapping[str, Tensor], rows: int,
                   by_name: Mapping[str, Task]) -> tuple[dict[str, Tensor], float]:
    """Several processes: each task's loss is a mean over the known labels of this process's shard,
    and shards hold different numbers of them. Scaled by (the shard's share of the task's known labels)
    / (its share of the `rows`), which the trainer's row-share weighting then cancels, the average over
    processes is each task's mean over all its known labels in the global batch: what one process
    with the whole batch computes. Returns the scaled losses and the row share (one all-reduce for
    both); unchanged and 1.0 when alone."""
    names = list(parts)
    known = [int(by_name[n].known(by_name[n].prepare_target(torch.as_tensor(ys[n]))).sum()) for n in names]
    device = next(iter(parts.values())).device if parts else "cpu"
    row_share, *label_shares = shares([rows, *known], device=device)
    return {n: parts[n] * (s / row_share) for n, s in zip(names, label_shares)}, row_share
