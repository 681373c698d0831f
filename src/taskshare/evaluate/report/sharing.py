"""Tables for multi-task comparisons: per-task main metric, delta_m, parameters, inference time."""
from __future__ import annotations

import statistics
from collections import defaultdict

from ...tasks import Task
from ..multilabel import per_label_rows


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    mean = statistics.mean(values) * scale
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"
    return f"{mean:.{digits}f}"


def mean_metric_name(tasks: list[Task]) -> str:
    """What a mean over the tasks' main metrics is a mean of: one metric's name when every task has
    it, else "main metric" (a mean of AUROC and R² is not a mean AUROC)."""
    return tasks[0].main_metric if len({t.main_metric for t in tasks}) == 1 else "main metric"


def sharing_table(tasks: list[Task], rows: list) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per mode, seeds aggregated (mean ± std)."""
    by_mode = defaultdict(list)
    for r in rows:
        by_mode[r.mode].append(r)
    header = ["mode", *[t.name for t in tasks], f"mean {mean_metric_name(tasks)}", "delta_m (%)", "params", "infer ms"]
    body = []
    for mode, rs in by_mode.items():
        cells = [mode + (f" ({rs[0].balancer})" if getattr(rs[0], "balancer", None) else "")]
        cells += [_mean_std([r.main[t.name] for r in rs], 100) for t in tasks]
        cells.append(_mean_std([statistics.mean(r.main.values()) for r in rs], 100))
        cells.append(_mean_std([r.delta_m for r in rs], 1, 2) if rs[0].delta_m is not None else "")
        cells.append(f"{rs[0].params:,}")
        cells.append(f"{statistics.median(r.inference_ms for r in rs):.1f}")
        body.append(cells)
    return header, body


def sharing_markdown(tasks: list[Task], rows: list, title: str = "Multi-task comparison", note: str = "") -> str:
    header, body = sharing_table(tasks, rows)
    lines = [f"# {title}", "", *([f"**{note}**", ""] if note else []), "Main metric per task (x100) on the test split, mean ± std over seeds; delta_m against "
             "one model per task (positive = better).", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    notes = sorted({n for r in rows for n in r.notes})
    lines += ["", *[f"- {n}" for n in notes]] if notes else ["", "No task was hurt by sharing."]
    for task in tasks:
        lines += per_label_markdown(task.name, [{"mode": r.mode, "metrics": r.test.get(task.name, {})} for r in rows])
    return "\n".join(lines) + "\n"


def per_label_markdown(task: str, rows: list[dict]) -> list[str]:
    """A multi-label task's per-label AUROC and AP (each over the label's known test entries) and the
    labels skipped; nothing for other kinds of task."""
    table = per_label_rows(rows)
    if table is None:
        return []
    header, body, skipped = table
    counts = ", ".join(f"{m} {n:g}" for m, n in skipped.items())
    return ["", f"## {task}: each label", "", "AUROC / AP (x100) per label over its known test entries, mean over "
            f"seeds; labels skipped (one class only among the known entries): {counts}.", "",
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(c) + " |" for c in body]]


def print_sharing(console, tasks: list[Task], rows: list, title: str) -> None:
    from rich.table import Table
    header, body = sharing_table(tasks, rows)
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h.replace("delta_m (%)", "Δm %"), justify="left" if i == 0 else "right",
                         no_wrap=True, min_width=12 if i == 0 else None)
    for cells in body:
        table.add_row(*cells)
    console.print(table)
    for note in sorted({n for r in rows for n in r.notes}):
        console.print(f"[yellow]{note}[/]")
