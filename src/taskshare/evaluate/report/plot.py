"""A dependency-free SVG line plot: metric against labels per class, one line per strategy."""
from __future__ import annotations

import html
import math

from ..summary import Summary

PALETTE = ["#444444", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8"]


def strategy_plot(summary: Summary, width: int = 720, height: int = 420, title: str = "") -> str:
    """x: labels per class (log-spaced positions, 'all' last); y: the metric (x100)."""
    left, right, top, bottom = 60, 210, 30, 50
    pw, ph = width - left - right, height - top - bottom
    shots = summary.shots
    xs = {s: left + (pw * i / max(1, len(shots) - 1)) for i, s in enumerate(shots)}
    values = [c.mean * 100 for c in summary.cells.values()]
    lo, hi = math.floor(min(values) / 5) * 5, math.ceil(max(values) / 5) * 5
    hi = hi if hi > lo else lo + 5

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>']
    if title:
        parts.append(f'<text x="{left}" y="18" font-size="14">{html.escape(title)}</text>')
    for tick in range(int(lo), int(hi) + 1, 5 if hi - lo <= 40 else 10):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    for s, x in xs.items():
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{html.escape(str(s))}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">labels per class</text>')
    parts.append(f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'test {html.escape(summary.metric)} (%)</text>')
    for i, name in enumerate(summary.strategies):
        color = PALETTE[i % len(PALETTE)]
        pts = [(xs[s], y(summary.cells[(name, s)].mean * 100)) for s in shots if (name, s) in summary.cells]
        dash = ' stroke-dasharray="6,4"' if name == "scratch" else ""
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} '
                     f'points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in pts)}"/>')
        parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in pts)
        ly = top + 14 + 18 * i
        parts.append(f'<line x1="{left + pw + 16}" x2="{left + pw + 40}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{left + pw + 46}" y="{ly}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
