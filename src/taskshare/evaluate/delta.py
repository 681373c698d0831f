"""The multi-task headline metric and its warnings.

delta_m (Maninis et al. 2019; Vandenhende et al. 2021): the mean over tasks of the relative change
of each task's main metric against its single-task baseline, sign-corrected so that positive always
means better: delta_m = 100/T * sum_t s_t (M_mt,t - M_st,t) / |M_st,t|, s_t = +1 if higher is better.
"""
from __future__ import annotations

from typing import Mapping

from ..errors import TaskshareError


def relative_gains(multi: Mapping[str, float], single: Mapping[str, float],
                   higher_is_better: Mapping[str, bool]) -> dict[str, float]:
    """Per task, the sign-corrected relative change in percent."""
    missing = [t for t in multi if t not in single or t not in higher_is_better]
    if missing:
        raise TaskshareError(f"no single-task baseline for task {missing[0]!r}")
    gains = {}
    for t, m in multi.items():
        base = single[t]
        if base == 0:
            raise TaskshareError(f"task {t!r}: the single-task baseline's metric is 0; relative change is undefined")
        gains[t] = (1 if higher_is_better[t] else -1) * 100.0 * (m - base) / abs(base)
    return gains


def delta_m(multi: Mapping[str, float], single: Mapping[str, float], higher_is_better: Mapping[str, bool]) -> float:
    gains = relative_gains(multi, single, higher_is_better)
    return sum(gains.values()) / len(gains)


def sharing_warnings(mode: str, gains: Mapping[str, float], tolerance: float = 0.5) -> list[str]:
    """Negative transfer per task (worse than its single-task model by more than `tolerance` %),
    and a capacity hint when most tasks are hurt."""
    hurt = {t: g for t, g in gains.items() if g < -tolerance}
    notes = [f"negative transfer: {mode} hurts task {t!r} by {-g:.1f}% against its single-task model"
             for t, g in sorted(hurt.items(), key=lambda kv: kv[1])]
    if len(hurt) > len(gains) / 2:
        notes.append(f"{mode} is worse than separate models on {len(hurt)} of {len(gains)} tasks: the shared trunk "
                     f"may be too small for all of them (Caruana 1997); try a wider trunk, or group related tasks")
    return notes
