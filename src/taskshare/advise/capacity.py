"""Capacity check (Caruana: multi-task learning hurts mainly when the network is too small): train
hard sharing and one model per task at several trunk widths and report, per width, delta_m (the mean
relative change of hard sharing against the single-task models) and where sharing stops hurting."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from ..errors import TaskshareError
from ..tasks import Task
from ..train.config import TrainConfig


@dataclass
class CapacityRow:
    width: int
    delta_m: float                  # % of hard sharing against one model per task (> 0: sharing helps)
    single: dict[str, float]        # task -> main test metric of its own model
    hard: dict[str, float]
    params_single: int
    params_hard: int


@dataclass
class CapacityReport:
    rows: list[CapacityRow]
    stops_hurting_at: int | None    # the smallest width from which delta_m >= -tolerance at every larger width
    tolerance: float

    def summary(self) -> str:
        parts = [f"width {r.width}: delta_m {r.delta_m:+.2f}%" for r in self.rows]
        tail = (f"multi-task learning stops hurting at width {self.stops_hurting_at}" if self.stops_hurting_at is not None
                else "multi-task learning hurts at every width tried: try a wider trunk or fewer tasks per trunk")
        return "; ".join(parts) + f". {tail}."


def capacity_check(trunk_of_width: Callable[[int], nn.Module], widths: Sequence[int], tasks: Sequence[Task],
                   train: Any, val: Any, test: Any, config: TrainConfig | None = None,
                   tolerance: float = 0.5) -> CapacityReport:
    """`trunk_of_width(w)` builds a fresh trunk of width w; every width trains the single-task models
    and hard sharing on the same data and seed (`compare_sharing`)."""
    from ..train.compare_sharing import compare_sharing
    if not widths:
        raise TaskshareError("capacity_check needs at least one width")
    rows = []
    for width in sorted(widths):
        results = compare_sharing(lambda: trunk_of_width(width), tasks, train, val, test, ["single", "hard"], config)
        single, hard = results
        rows.append(CapacityRow(width, float(hard.delta_m), single.main, hard.main, single.params, hard.params))
    stops = None
    for i, row in enumerate(rows):
        if all(r.delta_m >= -tolerance for r in rows[i:]):
            stops = row.width
            break
    return CapacityReport(rows, stops, tolerance)
