"""Frozen-trunk feature cache: compute the trunk's outputs once, then train the head on them.

Exact when the trunk is frozen and in eval mode and inputs are not augmented; the runner checks the
first two and turns the cache off (with a log line saying why) when inputs are augmented.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import ArrayDataset, make_loader
from ..data.loaders import rows
from ..distributed import evaluation_part, gather_rows


@torch.no_grad()
def compute_features(trunk: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1024) -> ArrayDataset:
    """Trunk outputs for every example, kept on `device`, paired with the labels. Under several
    processes each computes its contiguous part and every process gets all of them."""
    was_training = trunk.training
    trunk.eval()
    part = evaluation_part(len(dataset))  # type: ignore[arg-type]
    feats, labels = [], []
    for x, y in make_loader(rows(dataset, part) if part is not None else dataset, batch_size, shuffle=False, sharded=False):
        feats.append(trunk(x.to(device)).float())
        labels.append(torch.as_tensor(y).to(device))
    trunk.train(was_training)
    out = ArrayDataset.__new__(ArrayDataset)
    out.x, out.y = torch.cat(feats), torch.cat(labels)
    if part is not None:
        out.x, out.y = gather_rows(out.x), gather_rows(out.y)
    return out


class FeatureCache:
    """Features of one fixed trunk, per dataset; reused across strategies that start by probing it."""

    def __init__(self, trunk: nn.Module, device: torch.device, batch_size: int = 1024):
        self.trunk, self.device, self.batch_size = trunk, device, batch_size
        self._store: dict[int, tuple[Dataset, ArrayDataset]] = {}
        self.trunk.to(device)

    def get(self, dataset: Dataset) -> ArrayDataset:
        hit = self._store.get(id(dataset))
        if hit is None or hit[0] is not dataset:
            hit = (dataset, compute_features(self.trunk, dataset, self.device, self.batch_size))
            self._store[id(dataset)] = hit
        return hit[1]
