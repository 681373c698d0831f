"""Could SHOT tell, without any label, whether adapting helped? Label-free signals on the target for the
source-only model and for the model SHOT adapted from it (the floor off, so every cell adapts),
beside what target labels say. A signal "votes to adapt" when it prefers the adapted model; a vote is
right when the adapted model is in fact more accurate on the target.

  im:          the information-maximisation loss SHOT minimises (lower preferred)
  confidence:  the mean top-class probability (higher preferred)
  consistency: agreement of the predictions with the class-centroid pseudo-labels in the model's own
               feature space (higher preferred: clusters and classifier agree)
  agreement:   the adapted model's predictions that equal the source model's (a drift, no preference)

    python benchmarks/shot_signals.py --seeds 1 --images 800 --epochs 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, write_section  # noqa: E402
from da_domains import PAIRS, TRUNKS, digit_pair, make_model, mnist1d_pair  # noqa: E402

from taskshare import Task, TrainConfig  # noqa: E402
from taskshare.adapt import centroid_pseudo_labels, fit_adaptation, fit_source_free, information_maximization  # noqa: E402
from taskshare.train.loop import evaluate  # noqa: E402

PREFERS = {"im": -1, "confidence": 1, "consistency": 1}


@torch.no_grad()
def signals(model, x) -> tuple[torch.Tensor, dict[str, float]]:
    model.eval()
    features = model.trunk(x)
    logits = model.head(features)
    labels = centroid_pseudo_labels(features.reshape(len(x), -1), logits)
    predicted = logits.argmax(1)
    return predicted, {"im": float(information_maximization(logits)),
                       "confidence": float(torch.softmax(logits.float(), 1).max(1).values.mean()),
                       "consistency": float((labels == predicted).float().mean())}


def cell(pair: str, trunk: str, seed: int, args) -> dict:
    t = torch.as_tensor
    domains = mnist1d_pair(seed, args.images) if pair == "mnist1d" else digit_pair(args.mnist, pair, seed, args.images)
    (xs, ys, _, _), (xt, _, xt_test, yt_test) = domains
    n_val, task = len(xs) // 5, Task("digit", num_classes=10)
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=2e-3, patience=args.epochs, min_steps=0,
                         progress=False, device="cpu", seed=seed)
    model = make_model(pair, trunk, seed)
    fit_adaptation(model, task, (t(xs[n_val:]), t(ys[n_val:])), t(xt), (t(xs[:n_val]), t(ys[:n_val])), config)
    test = (t(xt_test), t(yt_test))
    before = evaluate(model, task, test)["accuracy"]
    source_pred, source_signals = signals(model, t(xt))
    fit_source_free(model, task, t(xt), config, min_source_accuracy=0.0)
    after = evaluate(model, task, test)["accuracy"]
    pred, adapted = signals(model, t(xt))
    return {"cell": f"{pair}/{trunk}/seed {seed}", "gain": (after - before) * 100,
            "agreement": float((pred == source_pred).float().mean()),
            **{k: (source_signals[k], adapted[k]) for k in PREFERS}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    p.add_argument("--trunks", nargs="+", default=list(TRUNKS), choices=TRUNKS)
    p.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--images", type=int, default=800)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--section", default="shot_signals")
    args = p.parse_args()
    rows = [cell(pair, trunk, seed, args) for pair in args.pairs for trunk in args.trunks for seed in range(args.seeds)]
    lines = [f"{device_line()}; `python benchmarks/shot_signals.py {' '.join(sys.argv[1:])}`. Each signal: source "
             f"model -> adapted model, then whether it voted right (prefers the adapted model exactly when SHOT "
             f"raised target accuracy).", "",
             "| cell | SHOT's target gain (points) | im | confidence | consistency | agreement with the source model |",
             "|---|---|---|---|---|---|"]
    right = {k: 0 for k in PREFERS}
    for r in rows:
        shown = []
        for k, sign in PREFERS.items():
            a, b = r[k]
            ok = ((b - a) * sign > 0) == (r["gain"] > 0)
            right[k] += ok
            shown.append(f"{a:.2f} -> {b:.2f} {'right' if ok else 'wrong'}")
        lines.append(f"| {r['cell']} | {r['gain']:+.1f} | {' | '.join(shown)} | {r['agreement']:.2f} |")
    lines += ["", "Right votes: " + ", ".join(f"{k} {v} of {len(rows)}" for k, v in right.items()) + "."]
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
