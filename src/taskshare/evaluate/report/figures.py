"""Report plots drawn with matplotlib (the `report` extra) as SVG text to embed in the HTML page.

Percent axes where the tables use percent, labelled axes with real ticks, markers on every point and
a small horizontal offset per series, so a strategy drawn exactly under another stays visible.
Without matplotlib the dependency-free SVG of plot.py / curves.py is used instead.
"""
from __future__ import annotations

import io
from typing import Sequence

MARKERS = "osD^v<>pPX*h"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float = 7.5, height: float = 4.2):
    # Figure objects, not pyplot: no global figure registry, nothing shared between reports
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=96)
    return fig, fig.add_subplot(1, 1, 1)


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]              # drop the XML prolog: the SVG sits inside HTML


def _offsets(count: int, spread: float = 0.12) -> list[float]:
    """Horizontal offsets (in category units) so coincident series stay apart."""
    if count <= 1:
        return [0.0] * count
    return [spread * (i / (count - 1) - 0.5) for i in range(count)]


def line_plot(series: dict[str, Sequence[float | None]], xticks: Sequence[str], xlabel: str, ylabel: str,
              title: str = "", percent: bool = True, baseline: str | None = "scratch", connect: bool = True) -> str:
    """One line per series over categorical x positions (values as fractions when `percent`);
    `connect=False` draws markers only, for categories without an order (tasks)."""
    fig, ax = _figure()
    offsets = _offsets(len(series))
    for i, (name, values) in enumerate(series.items()):
        points = [(j + offsets[i], v * 100 if percent else v) for j, v in enumerate(values) if v is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], markersize=5, linewidth=1.8,
                linestyle=("--" if name == baseline else "-") if connect else "none", label=name,
                color="#444444" if name == baseline else f"C{i}")
    ax.set_xticks(range(len(xticks)), [str(t) for t in xticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, title, percent)


def _finish(fig, ax, title: str, percent: bool) -> str:
    """The y axis, grid, title and legend every line plot shares; the figure as SVG."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8))
    ax.grid(True, color="#e5e5e5")
    if title:
        ax.set_title(title, fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return _svg(fig)


def epoch_plot(series: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str = "",
               percent: bool = True) -> str:
    """Curves over epochs; markers every few points keep overlapping curves apart."""
    from matplotlib.ticker import MaxNLocator
    fig, ax = _figure(7.5, 3.6)
    longest = max((len(v) for v in series.values()), default=1)
    offsets = _offsets(len(series), spread=min(0.3, 0.02 * longest + 0.1))
    for i, (name, values) in enumerate(series.items()):
        ys = [v * 100 if percent else v for v in values]
        every = max(1, len(ys) // 10)
        ax.plot([j + 1 + offsets[i] for j in range(len(ys))], ys, marker=MARKERS[i % len(MARKERS)],
                markevery=(i % every, every), markersize=4, linewidth=1.4, label=name,
                linestyle="--" if name == "scratch" else "-", color="#444444" if name == "scratch" else f"C{i}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(fig, ax, title, percent)


def bar_plot(values: dict[str, float], xlabel: str, ylabel: str, title: str = "", reference: float | None = None,
             reference_label: str = "") -> str:
    """One bar per entry (fractions shown as percent), with an optional dashed reference line."""
    from matplotlib.ticker import PercentFormatter
    fig, ax = _figure(6.5, 3.4)
    names = list(values)
    ax.bar(range(len(names)), [values[n] * 100 for n in names], color="#1f77b4")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    if reference is not None:
        ax.axhline(reference * 100, color="#b71c1c", linestyle="--", linewidth=1.2, label=reference_label)
        ax.legend(frameon=False, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.grid(True, axis="y", color="#e5e5e5")
    if title:
        ax.set_title(title, fontsize=11)
    return _svg(fig)


FRACTIONS = ("accuracy", "macro_f1", "binary_accuracy", "f1", "auroc", "map", "auroc_micro")


def strategy_figure(summary, title: str = "") -> str:
    """Test metric against labels per class, one line per strategy, scratch dashed."""
    if not available():
        from .plot import strategy_plot
        return strategy_plot(summary, title=title)
    series = {name: [summary.cells[(name, s)].mean if (name, s) in summary.cells else None for s in summary.shots]
              for name in summary.strategies}
    percent = summary.metric in FRACTIONS
    return line_plot(series, summary.shots, "labels per class", f"test {summary.metric}" + (" (%)" if percent else ""),
                     title, percent=percent)


def curves_figure(rows: list[dict], shot, metric: str = "accuracy") -> str:
    """Validation score per epoch (every stage in sequence) of each strategy at one number of labels per
    class, first seed."""
    if not available():
        from .curves import curves_svg
        return curves_svg(rows, shot)
    chosen = [r for r in rows if str(r["labels_per_class"]) == str(shot)]
    if not chosen:
        return ""
    seed = chosen[0]["seed"]
    series = {}
    for r in chosen:
        curve = [v for stage in r.get("stages", []) for v in stage.get("curve", []) if v == v]
        if r["seed"] == seed and curve:
            series[r["strategy"].split(" -> ")[0]] = curve
    if not series:
        return ""
    percent = metric in FRACTIONS
    return epoch_plot(series, "epoch (all stages in sequence)", f"validation {metric}" + (" (%)" if percent else ""),
                      f"{shot} labels per class, seed {seed}", percent=percent)
