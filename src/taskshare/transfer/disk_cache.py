"""A feature cache on disk: the frozen trunk's outputs for a whole dataset written once into a
memory-mapped .npy file, then shared by every strategy, number of labels per class and seed of a run.
A subset (a few-shot split) is gathered from it into its own file, chunk by chunk, so features for
100,000 images never need to fit in RAM; training slices batches from the mapped files and the
operating system pages them in and out."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from ..data import ArrayDataset, make_loader
from ..data.arrays import labels_of
from ..data.sources.progress import RateLog
from .features import FeatureCache

log = logging.getLogger("taskshare")
CHUNK = 8192  # rows gathered per step when writing a subset's file


class DiskFeatureCache(FeatureCache):
    def __init__(self, trunk: nn.Module, device: torch.device, folder: str | Path, batch_size: int = 256):
        super().__init__(trunk, device, batch_size)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._full: dict[int, tuple[Dataset, np.ndarray]] = {}
        self._subsets: dict[tuple[int, bytes], ArrayDataset] = {}

    def get(self, dataset: Dataset) -> ArrayDataset:
        if isinstance(dataset, Subset):
            base = self._features(dataset.dataset)
            idx = np.asarray(dataset.indices, dtype=np.int64)
            key = (id(dataset.dataset), idx.tobytes())
            if key not in self._subsets:
                self._subsets[key] = self._wrap(self._gather(base, idx), labels_of(dataset))
            return self._subsets[key]
        return self._wrap(self._features(dataset), labels_of(dataset))

    def _features(self, dataset: Dataset) -> np.ndarray:
        hit = self._full.get(id(dataset))
        if hit is not None and hit[0] is dataset:
            return hit[1]
        n = len(dataset)  # type: ignore[arg-type]
        path = self.folder / f"features{len(self._full)}.npy"
        was_training = self.trunk.training
        self.trunk.eval()
        array = None
        progress = RateLog("caching trunk features", n)
        row = 0
        with torch.no_grad():
            for x, _ in make_loader(dataset, self.batch_size, shuffle=False, sharded=False):
                feats = self.trunk(x.to(self.device)).float().cpu().numpy()
                if array is None:
                    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, feats.shape[1]))
                array[row:row + len(feats)] = feats
                row += len(feats)
                progress.advance(len(feats))
        self.trunk.train(was_training)
        progress.finish()
        array.flush()
        log.info("feature cache on disk: %s (%d x %d, %.1f MB)", path, n, array.shape[1], array.nbytes / 2**20)
        mapped = np.load(path, mmap_mode="r")
        self._full[id(dataset)] = (dataset, mapped)
        return mapped

    def _gather(self, base: np.ndarray, idx: np.ndarray) -> np.ndarray:
        path = self.folder / f"subset{len(self._subsets)}.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(idx), base.shape[1]))
        for start in range(0, len(idx), CHUNK):
            part = idx[start:start + CHUNK]
            out[start:start + len(part)] = base[part]
        out.flush()
        return np.load(path, mmap_mode="r")

    def close(self) -> None:
        """Drop the maps and delete their files (they can be large; a run writes them afresh)."""
        import shutil
        self._full.clear()
        self._subsets.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _wrap(self, features: np.ndarray, labels: torch.Tensor) -> ArrayDataset:
        out = ArrayDataset.__new__(ArrayDataset)
        # from_numpy on a read-only map would warn; the map is never written through this tensor
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out.x = torch.from_numpy(features)
        out.y = labels   # batches go to the device one at a time, features and labels alike
        return out
