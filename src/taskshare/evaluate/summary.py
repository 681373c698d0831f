"""Aggregate transfer results over seeds: mean, spread, gain over scratch, negative transfer."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass


@dataclass
class Cell:
    mean: float
    std: float
    n: int
    seconds: float
    steps: float = 0.0   # optimizer steps per run, mean over seeds: the budget each strategy used

    def text(self, scale: float = 100.0) -> str:
        if self.n > 1:
            return f"{self.mean * scale:.1f} ± {self.std * scale:.1f}"
        return f"{self.mean * scale:.1f}"


@dataclass
class Summary:
    metric: str
    higher_is_better: bool
    shots: list            # column order
    strategies: list[str]  # row order, scratch first
    cells: dict            # (strategy, shot) -> Cell

    def best(self, shot) -> str:
        sign = 1 if self.higher_is_better else -1
        present = [s for s in self.strategies if (s, shot) in self.cells]
        return max(present, key=lambda s: sign * self.cells[(s, shot)].mean)

    def gain(self, strategy: str, shot) -> float | None:
        """Mean improvement over scratch at this shot, sign-corrected so positive means better."""
        base = self.cells.get(("scratch", shot))
        cell = self.cells.get((strategy, shot))
        if base is None or cell is None:
            return None
        sign = 1 if self.higher_is_better else -1
        return sign * (cell.mean - base.mean)

    def negative_transfer(self) -> list[tuple[str, object, float]]:
        """(strategy, shot, gain) wherever a transfer strategy does worse than scratch."""
        out = []
        for s in self.strategies:
            if s == "scratch":
                continue
            for shot in self.shots:
                g = self.gain(s, shot)
                if g is not None and g < 0:
                    out.append((s, shot, g))
        return out


def _shot_key(shot) -> tuple:
    return (1, 0) if shot == "all" else (0, shot)


def summarize(rows: list[dict], metric: str = "accuracy", higher_is_better: bool = True) -> Summary:
    groups: dict = defaultdict(list)
    order: list[str] = []
    for r in rows:
        name = r["strategy"].split(" -> ")[0]  # auto's rows group under auto, whatever it chose
        groups[(name, r["labels_per_class"])].append((r["test"][metric], r["seconds"], r.get("steps", 0)))
        if name not in order:
            order.append(name)
    if "scratch" in order:
        order.remove("scratch")
        order.insert(0, "scratch")
    shots = sorted({k[1] for k in groups}, key=_shot_key)
    cells = {}
    for key, values in groups.items():
        scores = [v[0] for v in values]
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((x - mean) ** 2 for x in scores) / (len(scores) - 1)) if len(scores) > 1 else 0.0
        cells[key] = Cell(mean, std, len(scores), sum(v[1] for v in values) / len(values),
                          sum(v[2] for v in values) / len(values))
    return Summary(metric, higher_is_better, shots, order, cells)


def gains_over_scratch(rows: list[dict], metric: str = "accuracy") -> dict[tuple[str, str], tuple[float, float, int]]:
    """(strategy, shot) -> (mean, std, seeds) of test metric minus scratch's on the same split and seed,
    in points (x100)."""
    scratch = {(str(r["labels_per_class"]), r["seed"]): r["test"][metric] for r in rows
               if r["strategy"].split(" -> ")[0] == "scratch"}
    diffs: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        name = r["strategy"].split(" -> ")[0]
        key = (str(r["labels_per_class"]), r["seed"])
        if name == "scratch" or key not in scratch:
            continue
        diffs.setdefault((name, key[0]), []).append(100 * (r["test"][metric] - scratch[key]))
    return {k: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) for k, v in diffs.items()}
