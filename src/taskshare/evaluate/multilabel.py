"""Multi-label metrics as multi-label work reports them: per label, over that label's known entries,
then the macro mean over labels.

Pooling every label's scores into one ranking (the micro AUROC) rewards knowing each label's base
rate: constant per-label scores at prevalences 0.05 ... 0.95 rank the frequent labels' positives
above the rare labels' negatives and score far above 0.5 while knowing nothing about any example.
The micro figure is kept, under its own name (`auroc_micro`), never as the main metric.

A label whose known entries hold a single class has no AUROC or AP; it is skipped in the means and
counted in `labels_skipped`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .metrics import auroc


def average_precision(scores: Tensor, y: Tensor) -> float:
    """Area under the precision-recall curve as the step sum over distinct thresholds,
    sum_n (R_n - R_{n-1}) P_n (tied scores form one threshold); NaN without a positive."""
    scores, y = scores.reshape(-1).double(), (y.reshape(-1) > 0.5).double()
    positives = float(y.sum())
    if positives == 0 or len(y) == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    s, t = scores[order], y[order]
    tps, fps = torch.cumsum(t, 0), torch.cumsum(1 - t, 0)
    last = torch.cat([torch.nonzero(s[1:] != s[:-1]).reshape(-1), torch.tensor([len(s) - 1])])
    tp, fp = tps[last], fps[last]
    precision, recall = tp / (tp + fp), tp / positives
    steps = recall - torch.cat([recall.new_zeros(1), recall[:-1]])
    return float((steps * precision).sum())


def per_label(scores: Tensor, y: Tensor, known: Tensor) -> dict[str, list[float]]:
    """Each label's AUROC and AP over its known entries (both NaN where the label has one class only,
    so the macro means skip the same labels)."""
    scores, y, known = scores.reshape(len(y), -1), y.reshape(len(y), -1), known.reshape(len(y), -1)
    out: dict[str, list[float]] = {"auroc": [], "ap": [], "positives": [], "known": []}
    for j in range(y.shape[1]):
        s, t = scores[known[:, j], j], y[known[:, j], j]
        area = auroc(s, t)
        out["auroc"].append(area)
        out["ap"].append(float("nan") if math.isnan(area) else average_precision(s, t))   # skipped alike
        out["positives"].append(float((t > 0.5).sum()))
        out["known"].append(float(len(t)))
    return out


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def multilabel_metrics(names: list[str], scores: Tensor, y: Tensor, known: Tensor) -> dict[str, float]:
    """`auroc` (macro over labels), `map` (macro AP), `auroc_micro` (pooled), `labels_skipped`, each
    label's own `auroc/label<j>` and `ap/label<j>` (NaN where skipped; the slash groups them in
    TensorBoard and MLflow), and any other named metric over the pooled known entries."""
    from .metrics import compute_metrics
    labels = per_label(scores, y, known)
    out: dict[str, float] = {}
    pooled = [n for n in names if n not in ("auroc", "map", "auroc_micro")]
    for name in names:
        if name == "auroc":
            out[name] = _mean(labels["auroc"])
        elif name == "map":
            out[name] = _mean(labels["ap"])
        elif name == "auroc_micro":
            out[name] = auroc(scores[known], y[known])
    out.update(compute_metrics(pooled, scores[known], y[known]))
    out["labels_skipped"] = float(sum(math.isnan(v) for v in labels["auroc"]))
    for j, (area, ap) in enumerate(zip(labels["auroc"], labels["ap"])):
        out[f"auroc/label{j}"], out[f"ap/label{j}"] = area, ap
    return out


def label_values(metrics: dict[str, float]) -> list[tuple[float, float]]:
    """(AUROC, AP) of each label, in label order, from a metrics dict `multilabel_metrics` wrote;
    empty for any other task's metrics."""
    values = []
    while f"auroc/label{len(values)}" in metrics:
        j = len(values)
        values.append((metrics[f"auroc/label{j}"], metrics.get(f"ap/label{j}", float("nan"))))
    return values


def per_label_rows(rows: list[dict]) -> tuple[list[str], list[list[str]], dict[str, float]] | None:
    """One table for one multi-label task over a comparison's results: `rows` are (mode, metrics) pairs
    as dicts {"mode": ..., "metrics": ...}, several per mode when there are several seeds (averaged,
    skipping NaN). Returns the header, one row per label ("AUROC / AP" x100 per mode, "skipped" where a
    label had one class only) and each mode's mean count of skipped labels; None without per-label values."""
    modes: dict[str, list[list[tuple[float, float]]]] = {}
    skipped: dict[str, list[float]] = {}
    for r in rows:
        values = label_values(r["metrics"])
        if values:
            modes.setdefault(r["mode"], []).append(values)
            skipped.setdefault(r["mode"], []).append(float(r["metrics"].get("labels_skipped", 0.0)))
    if not modes:
        return None
    labels = max(len(v) for runs in modes.values() for v in runs)
    body = []
    for j in range(labels):
        cells = [str(j)]
        for runs in modes.values():
            area = _mean([v[j][0] for v in runs if j < len(v)])
            ap = _mean([v[j][1] for v in runs if j < len(v)])
            cells.append("skipped" if math.isnan(area) else f"{100 * area:.1f} / {100 * ap:.1f}")
        body.append(cells)
    return (["label", *[f"{m} AUROC / AP" for m in modes]], body,
            {m: sum(v) / len(v) for m, v in skipped.items()})
