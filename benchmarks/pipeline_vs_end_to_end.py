"""End-to-end versus a pipeline, as a function of how much (x, y) data there is.

Task: read the digit in a 48x48 canvas where a 28x28 MNIST digit sits at a random place. Pipeline:
stage 1 ("locate") regresses the digit's centre from the canvas, trained on 4,000 canvases with known
positions (no digit labels); stage 2 ("read") classifies 28x28 digits, trained on 4,000 labelled
MNIST digits; the glue crops the canvas around the predicted centre (a differentiable bilinear crop).
End-to-end: one CNN reading the canvas, trained on n (canvas, label) pairs only. The pipeline is
scored as composed (it uses no (canvas, label) pair) and fine-tuned end to end on the same n pairs.
Every model is the same CNN (16-32-64, BatchNorm); digits of each data set are disjoint; test on
1,000 canvases from held-out digits; mean over 2 seeds.

    python benchmarks/pipeline_vs_end_to_end.py --mnist PATH/mnist10k.npz [--device cuda]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, write_section  # noqa: E402

from taskshare import Task, TrainConfig, evaluate  # noqa: E402
from taskshare.models import build_model  # noqa: E402
from taskshare.experiments.pipeline import Pipeline, Stage, fit_end_to_end, fit_stage  # noqa: E402

CANVAS, DIGIT = 48, 28
SIZES = [100, 300, 1000, 3000]


def place(digits: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvases (n, 1, 48, 48) and digit centres in [-1, 1] (x, y)."""
    n = len(digits)
    canvas = np.zeros((n, 1, CANVAS, CANVAS), np.float32)
    top = rng.integers(0, CANVAS - DIGIT + 1, n)
    left = rng.integers(0, CANVAS - DIGIT + 1, n)
    for i in range(n):
        canvas[i, 0, top[i]:top[i] + DIGIT, left[i]:left[i] + DIGIT] = digits[i]
    canvas += rng.normal(0, 0.05, canvas.shape).astype(np.float32)
    centre = np.stack([(left + DIGIT / 2) / CANVAS * 2 - 1, (top + DIGIT / 2) / CANVAS * 2 - 1], 1).astype(np.float32)
    return torch.as_tensor(canvas), torch.as_tensor(centre)


def crop(canvas: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The 28x28 window around `centre` (bilinear, differentiable in the centre)."""
    scale = DIGIT / CANVAS
    theta = torch.zeros(len(canvas), 2, 3, device=canvas.device, dtype=canvas.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = centre.to(canvas.dtype)
    grid = F.affine_grid(theta, (len(canvas), 1, DIGIT, DIGIT), align_corners=False)
    return F.grid_sample(canvas, grid, align_corners=False)


def cnn(out: int) -> torch.nn.Module:
    return build_model("cnn2d", 1, out)


def run(seed: int, images: np.ndarray, labels: np.ndarray, device: str) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    images, labels = images[order], labels[order]
    loc_digits, read_x, read_y = images[:4000], images[4000:8000], labels[4000:8000]
    e2e_digits, e2e_y = images[8000:9000], labels[8000:9000]     # recycled below for larger n
    test_digits, test_y = images[9000:], labels[9000:]
    cfg = TrainConfig(epochs=15, batch_size=128, lr=2e-3, min_steps=0, progress=False, device=device, seed=seed)
    digit = Task("digit", num_classes=10)
    centre = Task("centre", "regression", num_outputs=2)
    x_loc, c_loc = place(loc_digits, rng)
    x_test, _ = place(test_digits, rng)
    test = (x_test, torch.as_tensor(test_y))
    results = {}
    torch.manual_seed(seed)
    pipe = Pipeline([Stage("locate", cnn(2)), Stage("read", cnn(10), inputs=lambda x, c: crop(x, c))])
    fit_stage(pipe, "locate", centre, (x_loc[:3600], c_loc[:3600]), (x_loc[3600:], c_loc[3600:]), cfg)
    read = torch.as_tensor(read_x[:, None])
    fit_stage(pipe, "read", digit, (read[:3600], torch.as_tensor(read_y[:3600])),
              (read[3600:], torch.as_tensor(read_y[3600:])), cfg)
    results["pipeline, composed (no (x, y) pairs)"] = {n: evaluate(pipe, digit, test)["accuracy"] for n in SIZES}
    state = {k: v.clone() for k, v in pipe.state_dict().items()}
    for n in SIZES:
        reps = -(-n // len(e2e_digits))
        pool = np.concatenate([e2e_digits] * reps)[:n]
        pool_y = np.concatenate([e2e_y] * reps)[:n]
        x_pairs, _ = place(pool, rng)            # repeated digits land in new places
        y_pairs = torch.as_tensor(pool_y)
        n_val = max(10, n // 5)
        train, val = (x_pairs[n_val:], y_pairs[n_val:]), (x_pairs[:n_val], y_pairs[:n_val])
        torch.manual_seed(seed)
        e2e = cnn(10)
        fit_end_to_end_model(e2e, digit, train, val, cfg)
        results.setdefault("end-to-end CNN on the (x, y) pairs", {})[n] = evaluate(e2e, digit, test)["accuracy"]
        pipe.load_state_dict(state)
        fit_end_to_end(pipe, digit, train, val, cfg)
        results.setdefault("pipeline, then fine-tuned end to end", {})[n] = evaluate(pipe, digit, test)["accuracy"]
        print(seed, n, {k: round(v[n] * 100, 1) for k, v in results.items() if n in v}, flush=True)
    return results


def fit_end_to_end_model(model, task, train, val, cfg):
    from taskshare import fit
    fit(model, task, train, val, cfg)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args()
    data = np.load(args.mnist)
    images, labels = data["images"].astype(np.float32) / 255.0, data["labels"]
    runs = [run(seed, images, labels, args.device) for seed in range(args.seeds)]
    lines = [f"{device_line()}; test accuracy (%) on 1,000 canvases, mean over {args.seeds} seeds, by the number n "
             "of (canvas, label) pairs.", "", "| model | " + " | ".join(f"n={n}" for n in SIZES) + " |",
             "|---|" + "---|" * len(SIZES)]
    for name in runs[0]:
        cells = [f"{statistics.mean(r[name][n] for r in runs) * 100:.1f}" for n in SIZES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    write_section("pipeline_vs_end_to_end", text)
    print(text)


if __name__ == "__main__":
    main()
