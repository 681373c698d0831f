"""The report sections of domain adaptation and of the advice before training: what the terminal
printed (domain distances, each method's scores, the recommendation and its reason), as tables and a
plot on the shared page, with a warning when target accuracy is at or below chance."""
from __future__ import annotations

import html
import math


def _table(head: list[str], rows: list[list[str]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def _pct(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:.1f}%"


def below_chance(data: dict) -> list[str]:
    """Methods whose target score is not above chance (1 / classes): the model predicts no better
    than guessing on the domain it is meant for."""
    chance = data.get("chance")
    if chance is None:
        return []
    return [r["method"] for r in data.get("rows", []) if "target" in r and r["target"] <= chance + 1e-9]


def adapt_section(data: dict) -> str:
    metric = data.get("metric", "accuracy")
    raw = data.get("proxy_a_distance_raw", float("nan"))
    features = next((r["feature_distance"] for r in data.get("rows", []) if "feature_distance" in r), None)
    distances = [["raw inputs", f"{raw:.2f}"]] + ([["source-only model's features", f"{features:.2f}"]]
                                                 if features is not None else [])
    rows = [[html.escape(r["method"]), _pct(r.get("source_val")), _pct(r.get("target"))] for r in data.get("rows", [])]
    parts = ["<h2>Domain adaptation</h2>",
             "<p>How different the domains are: proxy A-distance of a linear domain classifier "
             "(0 = indistinguishable, 2 = separable).</p>", _table(["measured on", "proxy A-distance"], distances),
             f"<p>Source validation and target {html.escape(metric)}; target labels are used for this report only "
             f"(selection: {html.escape(str(data.get('selection', 'source')))}).</p>",
             _table(["method", f"source validation {metric}", f"target {metric}"], rows)]
    chance = data.get("chance")
    targets = {r["method"]: r["target"] for r in data.get("rows", []) if "target" in r}
    if targets:
        from .figures import available, bar_plot
        from .page import figure
        if available():
            parts.append(figure(bar_plot(targets, "method", f"target {metric} (%)", "target score by method",
                                         reference=chance, reference_label=f"chance ({_pct(chance)})")))
    for method in below_chance(data):
        parts.append(f'<p class="warn">{html.escape(method)}: target {html.escape(metric)} '
                     f'{_pct(targets[method])} is at or below chance ({_pct(chance)}); the model does not '
                     f'work on the target domain.</p>')
    return "".join(parts)


def advice_section(rows: list[dict]) -> str:
    table = []
    for row in rows:
        advice = row.get("advice", {})
        best = (advice.get("candidates") or [{}])[0]
        strategy = row.get("strategy")
        name = strategy if isinstance(strategy, str) else (strategy or {}).get("name", "")
        table.append([html.escape(str(row.get("labels_per_class"))), _num(best.get("logme")),
                      _num(advice.get("random_logme")), html.escape(str(name)), html.escape(str(advice.get("reason", "")))])
    return ("<h2>Advice before training</h2><p>The pretrained trunk scored on the target's labelled examples "
            "(LogME: higher is better), against a randomly initialised copy of it.</p>"
            + _table(["labels/class", "LogME", "random trunk", "recommended", "why"], table))


def _num(value) -> str:
    return "" if value is None else f"{value:.3f}"
