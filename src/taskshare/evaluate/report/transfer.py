"""Reports of a transfer comparison: a terminal table, Markdown, and a self-contained HTML page."""
from __future__ import annotations

import html
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ...io import atomic_write_json, atomic_write_text
from ..summary import Summary, gains_over_scratch
from .figures import curves_figure, strategy_figure
from .page import STYLE, figure


def terminal_table(summary: Summary, title: str = "") -> Table:
    table = Table(title=title or f"target test {summary.metric} (%), by labels per class")
    table.add_column("strategy")
    for shot in summary.shots:
        table.add_column(str(shot), justify="right")
    for name in summary.strategies:
        cells = []
        for shot in summary.shots:
            cell = summary.cells.get((name, shot))
            if cell is None:
                cells.append("")
                continue
            text = cell.text()
            gain = summary.gain(name, shot)
            if name == summary.best(shot):
                text = f"[bold green]{text}[/]"
            elif gain is not None and gain < 0:
                text = f"[red]{text}[/]"
            cells.append(text)
        table.add_row(name, *cells)
    return table


def markdown_table(summary: Summary) -> str:
    head = "| strategy | " + " | ".join(str(s) for s in summary.shots) + " |"
    rule = "|---|" + "---|" * len(summary.shots)
    rows = []
    for name in summary.strategies:
        cells = []
        for shot in summary.shots:
            cell = summary.cells.get((name, shot))
            text = cell.text() if cell else ""
            cells.append(f"**{text}**" if cell and name == summary.best(shot) else text)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def steps_table(summary: Summary) -> str:
    """Optimizer steps each strategy took (mean over seeds): one budget per comparison, shown."""
    head = "| steps | " + " | ".join(str(s) for s in summary.shots) + " |"
    rule = "|---|" + "---|" * len(summary.shots)
    rows = [f"| {name} | " + " | ".join(f"{summary.cells[(name, s)].steps:.0f}" if (name, s) in summary.cells else ""
                                       for s in summary.shots) + " |" for name in summary.strategies]
    return "\n".join([head, rule, *rows])


def warnings(summary: Summary) -> list[str]:
    return [f"negative transfer: {name} at {shot} labels per class is {-gain * 100:.1f} points below scratch"
            for name, shot, gain in summary.negative_transfer()]


def write_reports(out_dir: Path, rows: list[dict], summary: Summary, title: str, extra: dict | None = None) -> dict[str, Path]:
    """results.json, plot.svg, report.md and report.html in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    svg = strategy_figure(summary, title=title)
    paths = {"json": out_dir / "results.json", "svg": out_dir / "plot.svg",
             "md": out_dir / "report.md", "html": out_dir / "report.html"}
    atomic_write_json(paths["json"], {"title": title, **(extra or {}), "results": rows})
    atomic_write_text(paths["svg"], svg)
    notes = warnings(summary)
    md = [f"# {title}", "", f"Target test {summary.metric} (%), mean ± std over seeds; best per column in bold.", "",
          markdown_table(summary), "", "Optimizer steps per run (mean over seeds; the budget is shared by a "
          "strategy's stages, early stopping may end a run sooner):", "", steps_table(summary), "",
          "![strategies against labels per class](plot.svg)", ""]
    md += [f"- {n}" for n in notes] or ["No negative transfer: every strategy matched or beat scratch."]
    atomic_write_text(paths["md"], "\n".join(md) + "\n")
    gains = gains_over_scratch(rows, summary.metric)
    gain_rows = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(
            (lambda g: f"<td class={'warn' if g[0] < 0 else 'ok'}>{g[0]:+.1f} ± {g[1]:.1f}</td>" if g else "<td></td>")(
                gains.get((name, str(s)))) for s in summary.shots) + "</tr>"
        for name in summary.strategies if name != "scratch")
    curves = "".join(figure(curves_figure(rows, s, summary.metric)) for s in summary.shots)
    rows_html = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(
            f"<td{' class=best' if name == summary.best(s) else ''}>"
            f"{summary.cells[(name, s)].text() if (name, s) in summary.cells else ''}</td>" for s in summary.shots) + "</tr>"
        for name in summary.strategies)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1><p>Target test {html.escape(summary.metric)} (%), mean ± std over seeds.</p>
<table><tr><th>strategy</th>{''.join(f'<th>{html.escape(str(s))}</th>' for s in summary.shots)}</tr>{rows_html}</table>
{figure(svg)}
<h2>Transfer gain over scratch</h2><p>Points of test {html.escape(summary.metric)}, strategy minus scratch on the
same split and seed; mean ± standard deviation across seeds. Negative: negative transfer.</p>
<table><tr><th>strategy</th>{''.join(f'<th>{html.escape(str(s))}</th>' for s in summary.shots)}</tr>{gain_rows}</table>
<h2>Learning curves</h2>{curves}
<h2>Warnings</h2>
<ul>{''.join(f'<li class="warn">{html.escape(n)}</li>' for n in notes) or '<li>No negative transfer.</li>'}</ul>
</body></html>"""
    atomic_write_text(paths["html"], page)
    return paths


def print_summary(console: Console, summary: Summary, title: str = "") -> None:
    console.print(terminal_table(summary, title))
    console.print("optimizer steps per run: " + "; ".join(
        f"k={shot}: " + ", ".join(f"{name} {summary.cells[(name, shot)].steps:.0f}" for name in summary.strategies
                                  if (name, shot) in summary.cells) for shot in summary.shots), highlight=False)
    for note in warnings(summary):
        console.print(f"[yellow]{note}[/]")
