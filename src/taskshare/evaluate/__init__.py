"""Metrics, summaries over seeds, and reports (terminal, Markdown, HTML with an SVG plot)."""
from .metrics import METRICS, Metric, compute_metrics
from .summary import Cell, Summary, summarize

__all__ = ["METRICS", "Cell", "Metric", "Summary", "compute_metrics", "summarize"]
