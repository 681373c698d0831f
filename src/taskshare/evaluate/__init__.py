"""Pure measures: metrics, delta_m, summaries over seeds. No files and no plots here; the reports that
write and draw them live in evaluate.report, a layer above (see the README's Architecture)."""
from .metrics import METRICS, Metric, compute_metrics
from .summary import Cell, Summary, summarize

__all__ = ["METRICS", "Cell", "Metric", "Summary", "compute_metrics", "summarize"]
