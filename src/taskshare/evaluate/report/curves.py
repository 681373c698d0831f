"""Learning curves for the HTML report: validation score per epoch, every stage of a strategy in
sequence, as dependency-free SVG."""
from __future__ import annotations

import html

from .plot import PALETTE


def curves_svg(rows: list[dict], shot, seed=None, width: int = 720, height: int = 320) -> str:
    """Validation score per epoch for every strategy at one number of labels per class (first seed)."""
    chosen = [r for r in rows if str(r["labels_per_class"]) == str(shot)]
    if not chosen:
        return ""
    seed = chosen[0]["seed"] if seed is None else seed
    series = {}
    for r in chosen:
        if r["seed"] != seed:
            continue
        curve = [v for stage in r.get("stages", []) for v in stage.get("curve", [])]
        curve = [v for v in curve if v == v]
        if curve:
            series[r["strategy"].split(" -> ")[0]] = curve
    if not series:
        return ""
    left, right, top, bottom = 60, 210, 30, 40
    pw, ph = width - left - right, height - top - bottom
    longest = max(len(c) for c in series.values())
    lo = min(min(c) for c in series.values())
    hi = max(max(c) for c in series.values())
    hi = hi if hi > lo else lo + 1e-6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">validation score per epoch, {html.escape(str(shot))} labels per '
             f'class, seed {seed}</text>',
             f'<text x="{left - 8}" y="{top + 4}" text-anchor="end">{hi:.3f}</text>',
             f'<text x="{left - 8}" y="{top + ph + 4}" text-anchor="end">{lo:.3f}</text>',
             f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">epoch (all stages)</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for i, (name, curve) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{left + pw * j / max(1, longest - 1):.1f},{top + ph * (1 - (v - lo) / (hi - lo)):.1f}"
                       for j, v in enumerate(curve))
        dash = ' stroke-dasharray="6,4"' if name == "scratch" else ""
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{pts}"/>')
        ly = top + 14 + 18 * i
        parts.append(f'<line x1="{left + pw + 16}" x2="{left + pw + 40}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" '
                     f'stroke-width="2"{dash}/><text x="{left + pw + 46}" y="{ly}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
