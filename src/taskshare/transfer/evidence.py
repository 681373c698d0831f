"""The evidence `auto` decides by: stratified folds over the labelled budget, and a decision that reads
paired fold differences (a fold that is hard for every candidate does not hide a gap between two)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import TaskshareError


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out indices of each of `folds` folds; every class spread as evenly as its count allows."""
    if folds < 2:
        raise TaskshareError(f"cross-validation needs at least 2 folds, got {folds!r}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for j, i in enumerate(idx):
            parts[(j + offset) % folds].append(int(i))
        offset += len(idx)   # rotate the start, so classes with few examples do not all fill fold 0
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@dataclass
class Paired:
    """Mean and standard error of one candidate's fold scores minus another's (same folds)."""

    mean: float
    se: float

    @classmethod
    def of(cls, a: list[float], b: list[float]) -> "Paired":
        n = min(len(a), len(b))   # a candidate dropped after an early repeat has fewer folds
        d = np.asarray(a[:n], dtype=float) - np.asarray(b[:n], dtype=float)
        if len(d) < 2:
            return cls(float(d.mean()) if len(d) else 0.0, math.inf)
        return cls(float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))))

    def clearly_below(self) -> bool:
        """Below by more than the fold spread allows (one standard error of the paired mean)."""
        return self.mean < 0 and self.mean + self.se < 0


@dataclass
class Decision:
    choice: str
    ties: list[str]      # not clearly below the best: the candidates still in contention
    refused: list[str]   # clearly below the baseline: never chosen
    note: str


def decide(scores: dict[str, list[float]], prior: str, baseline: str = "scratch",
           higher_is_better: bool = True) -> Decision:
    """The candidate to keep and why. `scores`: paired samples per candidate (fold scores, or one
    validation split's per-example correctness), in the same order for all; `prior`: the size rule's
    choice, which breaks ties among transfer candidates; the baseline wins a tie with the best."""
    sign = 1.0 if higher_is_better else -1.0
    signed = {name: [sign * v for v in vals] for name, vals in scores.items()}
    if baseline not in signed:
        raise TaskshareError(f"the evidence must include the baseline {baseline!r}; got {sorted(signed)}")
    refused = [n for n in signed if n != baseline and Paired.of(signed[n], signed[baseline]).clearly_below()]
    eligible = [n for n in signed if n not in refused]
    mean = {n: float(np.mean(v)) for n, v in signed.items()}
    best = max(eligible, key=lambda n: mean[n])
    ties = [n for n in eligible if n == best or not Paired.of(signed[n], signed[best]).clearly_below()]
    # transfer has to earn its place: where the baseline is as good as the best within the spread,
    # it is kept; the rule breaks ties among transfer candidates only
    choice = baseline if baseline in ties else prior if prior in ties else best
    spread = {n: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for n, v in signed.items()}
    table = ", ".join(f"{n} {sign * mean[n]:.3f} ± {spread[n]:.3f} ({len(signed[n])})" for n in signed)
    others = ", ".join(t for t in ties if t != choice)
    why = (f"{baseline} is tied with the best ({others}) within one standard error of the paired differences"
           if choice == baseline and len(ties) > 1 else
           f"the size rule's choice, tied with {others} within one standard error of the paired differences"
           if choice == prior and len(ties) > 1 else
           "best mean score" + (", the size rule's choice too" if choice == prior else ""))
    refusal = f"; refused as clearly below {baseline}: {', '.join(refused)}" if refused else ""
    gap = Paired.of(signed[choice], signed[baseline])
    margin = (f"; {choice} minus {baseline}: {sign * gap.mean:+.3f} ± {gap.se:.3f} (standard error)"
              if choice != baseline else "")
    return Decision(choice, ties, refused, f"scores (mean ± std) {table}; kept {choice}: {why}{refusal}{margin}")
