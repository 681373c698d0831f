"""`taskshare report RUN_DIR`: rebuild a run's reports from the results it saved, so a report can be
regenerated (or improved) without retraining anything."""
from __future__ import annotations

import html
import json
from pathlib import Path

from ...errors import TaskshareError
from ...io import atomic_write_text


def rebuild(run_dir: str | Path) -> list[Path]:
    """Rewrite every report whose results are in `run_dir`; returns the files written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TaskshareError(f"{run_dir} is not a folder; expected a run's output folder")
    written: list[Path] = []
    results = run_dir / "results.json"
    if results.exists():
        from .transfer import write_reports
        from ..summary import summarize
        data = _load(results)
        rows = data.get("results")
        if not isinstance(rows, list) or not rows:
            raise TaskshareError(f"{results} holds no results list; expected the file a transfer run writes")
        extra = {k: v for k, v in data.items() if k not in ("results", "title")}
        paths = write_reports(run_dir, rows, summarize(rows), data.get("title", "transfer"), extra)
        written += list(paths.values())
    extras = _extra_sections(run_dir)
    if extras:
        page = run_dir / "report.html"
        from .page import shell
        body = page.read_text() if results.exists() and page.exists() else shell(f"taskshare run: {run_dir.name}")
        body = body.replace("</body></html>", "".join(extras) + "</body></html>")
        atomic_write_text(page, body)
        written.append(page)
    if not written:
        raise TaskshareError(f"{run_dir} holds no saved results (results.json, multitask_results.json, "
                             "adapt_results.json, advice.json, affinity.json)")
    return sorted(set(written))


def _load(path: Path) -> dict:
    from ...config import read_mapping
    return read_mapping(path, json.loads, json.JSONDecodeError, "JSON (was the run interrupted?)", TaskshareError)


def _table(head: list[str], rows: list[list[str]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def _multitask_plot(rows: list[dict], tasks: list[str]) -> str:
    """Each mode's main metric per task (first seed), so a mode that loses on a task shows."""
    from .figures import available, line_plot
    from .page import figure
    if not available() or not rows or not tasks:
        return ""
    seed = rows[0].get("seed")
    series = {r["mode"]: [r["main"].get(t) for t in tasks] for r in rows if r.get("seed") == seed}
    return figure(line_plot(series, tasks, "task", "test main metric (each task's own)", f"seed {seed}",
                            percent=False, baseline="single", connect=False))


def _per_label_html(task: str, rows: list[dict]) -> str:
    """A multi-label task's per-label AUROC / AP table and skipped-label counts (nothing for other kinds)."""
    from ..multilabel import per_label_rows
    table = per_label_rows([{"mode": r["mode"], "metrics": r.get("test", {}).get(task, {})} for r in rows])
    if table is None:
        return ""
    header, body, skipped = table
    counts = ", ".join(f"{m} {n:g}" for m, n in skipped.items())
    return (f"<h3>{html.escape(task)}: each label</h3><p>AUROC / AP (x100) per label over its known test entries, "
            f"mean over seeds; labels skipped (one class only among the known entries): {html.escape(counts)}.</p>"
            + _table(header, body))


def _multitask_section(data: dict, sub: str) -> str:
    rows = data.get("results", [])
    note = (data.get("config") or {}).get("note") or ""
    tasks = sorted({t for r in rows for t in r.get("main", {})})
    table = [[r["mode"], str(r["seed"])] + [f"{r['main'].get(t, float('nan')):.3f}" for t in tasks]
             + ["" if r.get("delta_m") is None else f"{r['delta_m']:+.2f}"] for r in rows]
    notes = [n for r in rows for n in r.get("notes", [])]
    return (f"<h2>Multi-task: one model per task vs sharing{html.escape(f' ({sub})' if sub else '')}</h2>"
            + (f"<p><b>{html.escape(note)}</b></p>" if note else "")
            + _table(["mode", "seed", *tasks, "delta_m %"], table)
            + _multitask_plot(rows, tasks) + "".join(f'<p class="warn">{html.escape(n)}</p>' for n in notes)
            + "".join(_per_label_html(t, rows) for t in tasks))


def _extra_sections(run_dir: Path) -> list[str]:
    parts = []
    # this run's comparison, then any a sub-folder holds (the demo's second multi-task regime)
    for mt in [run_dir / "multitask_results.json", *sorted(run_dir.glob("*/multitask_results.json"))]:
        if mt.exists():
            parts.append(_multitask_section(_load(mt), "" if mt.parent == run_dir else mt.parent.name))
    ad = run_dir / "adapt_results.json"
    if ad.exists():
        from .adapt import adapt_section
        parts.append(adapt_section(_load(ad)))
    advice = run_dir / "advice.json"
    if advice.exists():
        from .adapt import advice_section
        try:
            rows = json.loads(advice.read_text())
        except json.JSONDecodeError as exc:
            raise TaskshareError(f"{advice} is not valid JSON (was the run interrupted?): {exc}") from None
        parts.append(advice_section(rows if isinstance(rows, list) else []))
    af = run_dir / "affinity.json"
    if af.exists():
        from ...advise.affinity import Affinity, affinity_svg
        data = _load(af)
        affinity = Affinity(data["tasks"], data["matrix"], data.get("steps", 0))
        groups = data.get("groups")
        parts.append("<h2>Task affinity</h2>" + affinity_svg(affinity)
                     + (f"<p>Proposed groups: {html.escape(str(groups))}</p>" if groups else ""))
    return parts
