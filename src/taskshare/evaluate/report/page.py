"""The one look of every report.html (transfer, multi-task, adaptation, advice): a page shell and its
style, so a section added by any mode sits on the same page with the same tables and colours."""
from __future__ import annotations

import html

STYLE = ("body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}table{border-collapse:collapse;"
         "margin:0.5em 0 1em}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,"
         "th:first-child{text-align:left}th{background:#f5f5f5}.best{font-weight:bold;background:#e8f5e9}"
         ".warn{color:#b71c1c}.ok{color:#1b5e20}figure{margin:0.5em 0}svg{max-width:100%;height:auto}")


def shell(title: str, body: str = "") -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def figure(svg: str) -> str:
    """A plot as its own block; empty plots leave nothing behind."""
    return f'<figure class="plot">{svg}</figure>' if svg else ""
