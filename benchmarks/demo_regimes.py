"""The demo's two multi-task regimes, measured over several seeds on the built-in digit scenes, with
the demo's own YAML (src/taskshare/configs/demo_multitask*.yaml): few labelled pictures (a shared
trunk pools four tasks' labels: hard sharing should win) and every label known with a small trunk
(one trunk for four tasks has a quarter of the capacity: hard sharing should lose). Writes the
`demo_regimes` section of BENCHMARKS.md.

    nice -n 10 python benchmarks/demo_regimes.py [--seeds 0 1 2]
    python benchmarks/demo_regimes.py --seeds 0 --regimes '[{"name": "try", "data": {"scenes": 400}}]'
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, publish  # noqa: E402

CONFIGS = ROOT / "src" / "taskshare" / "configs"
DEMO = {"few labels": "demo_multitask.yaml", "small trunk": "demo_multitask_small.yaml"}


def _run(raw: dict, seed: int) -> tuple[dict, float]:
    """One comparison with the data and the weights drawn from `seed`; each mode's result by name."""
    from taskshare.experiments.multitask import load_multitask, run_multitask
    config = load_multitask({**raw, "data": {**raw["data"], "seed": seed}})
    config = replace(config, multitask=replace(config.multitask, seeds=[seed]))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        _, rows = run_multitask(config, Path(out))
    return {r.mode: r for r in rows}, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--regimes", help="JSON list of {name, data, model} overrides of the first demo YAML, "
                        "tried with single and hard only (nothing written)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from taskshare.config import load_yaml
    if args.regimes:
        base = load_yaml(CONFIGS / DEMO["few labels"])
        regimes = {r["name"]: {**base, "data": {**base["data"], **r.get("data", {})}, "model": r.get("model", base["model"]),
                               "multitask": {**base["multitask"], "modes": ["single", "hard"]}}
                   for r in json.loads(args.regimes)}
    else:
        regimes = {name: load_yaml(CONFIGS / file) for name, file in DEMO.items()}
    lines = ["## The demo's two multi-task regimes", "",
             f"`benchmarks/demo_regimes.py` on {device_line()}: the two multi-task comparisons of `taskshare demo` "
             f"with the demo's own settings, over seeds {args.seeds} (each seed draws the scenes, the hidden labels "
             "and the weights). Mean test AUROC over the four tasks (x100) and delta_m of each shared model against "
             "one model per task (positive: sharing helps).", "",
             "| regime | seed | one model per task | hard sharing | delta_m of each shared mode (%) | seconds |",
             "|---|---|---|---|---|---|"]
    for name, raw in regimes.items():
        deltas: dict[str, list[float]] = {}
        for seed in args.seeds:
            by, seconds = _run(raw, seed)
            for mode, r in by.items():
                if mode != "single":
                    deltas.setdefault(mode, []).append(r.delta_m)
            shared = ", ".join(f"{m} {r.delta_m:+.2f}" for m, r in by.items() if m != "single")
            lines.append(f"| {name} | {seed} | {100 * np.mean(list(by['single'].main.values())):.1f} | "
                         f"{100 * np.mean(list(by['hard'].main.values())):.1f} | {shared} | {seconds:.0f} |")
            print(lines[-1], flush=True)
        lines.append(f"| {name} | mean | | | " + ", ".join(f"{m} {np.mean(v):+.2f}" for m, v in deltas.items()) + " | |")
    if args.regimes:
        print("\n".join(lines))
    else:
        publish("demo_regimes", lines)


if __name__ == "__main__":
    main()
