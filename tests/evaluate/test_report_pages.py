"""report.html of every mode: one look, matplotlib plots with labelled axes and percent ticks, the
adaptation distances and a below-chance warning; and, where Chromium is installed, every plot
rendered by a real browser."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from taskshare.evaluate.report.page import STYLE
from taskshare.evaluate.report.rebuild import rebuild

pytest.importorskip("matplotlib")


def _transfer_rows():
    rows = []
    for shot, base in ((5, 0.5), (20, 0.7)):
        for name, gain in (("scratch", 0.0), ("linear_probe", 0.1), ("finetune", 0.1)):   # two lines coincide
            rows.append({"strategy": name, "labels_per_class": shot, "seed": 0, "test": {"accuracy": base + gain},
                         "seconds": 1.0, "cached": False, "stages": [{"curve": [0.3, 0.5 + gain, 0.6 + gain]}]})
    return rows


def _runs(tmp_path):
    transfer = tmp_path / "transfer"
    transfer.mkdir()
    (transfer / "results.json").write_text(json.dumps({"title": "mlp: transfer A -> B", "results": _transfer_rows()}))
    mt = tmp_path / "multitask"
    mt.mkdir()
    (mt / "multitask_results.json").write_text(json.dumps({"config": {}, "results": [
        {"mode": m, "seed": 0, "main": {"a": v, "b": v - 0.1}, "delta_m": None if m == "single" else -1.0}
        for m, v in (("single", 0.8), ("hard", 0.75))]}))
    adapt = tmp_path / "adapt"
    adapt.mkdir()
    (adapt / "adapt_results.json").write_text(json.dumps({
        "proxy_a_distance_raw": 1.37, "selection": "source", "metric": "accuracy", "chance": 0.1,
        "rows": [{"method": "source_only", "source_val": 0.95, "target": 0.08, "feature_distance": 1.92},
                 {"method": "dan", "source_val": 0.93, "target": 0.68}]}))
    advise = tmp_path / "advise"
    advise.mkdir()
    (advise / "advice.json").write_text(json.dumps([{"labels_per_class": 5, "strategy": "linear_probe", "advice": {
        "candidates": [{"logme": -0.37}], "random_logme": -0.5, "reason": "5 labels per class <= 30"}}]))
    return {"transfer": transfer, "multitask": mt, "adapt": adapt, "advise": advise}


@pytest.mark.slow
def test_every_mode_writes_report_html_with_the_same_look(tmp_path):
    pages = {}
    for mode, folder in _runs(tmp_path).items():
        rebuild(folder)
        pages[mode] = (folder / "report.html").read_text()
        assert STYLE in pages[mode], mode
    transfer = pages["transfer"]
    assert transfer.count("<svg") == 3                       # the strategy plot and a learning curve per shot
    assert "labels per class" in transfer and "test accuracy (%)" in transfer and "validation accuracy (%)" in transfer
    ticks = re.findall(r"<!-- (\d+)% -->", transfer)         # matplotlib writes each tick label as a comment
    assert len(set(ticks)) >= 4
    assert pages["multitask"].count("<svg") == 1 and "Multi-task" in pages["multitask"]
    adapt = pages["adapt"]
    assert "1.37" in adapt and "1.92" in adapt               # both distances the terminal printed
    assert "source_only: target accuracy 8.0% is at or below chance (10.0%)" in adapt
    assert "dan: target" not in adapt and adapt.count("<svg") == 1
    assert "linear_probe" in pages["advise"] and "5 labels per class &lt;= 30" in pages["advise"]


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed")
def test_every_plot_renders_in_headless_chromium(tmp_path):
    from PIL import Image
    for mode, folder in _runs(tmp_path).items():
        rebuild(folder)
        page = (folder / "report.html").read_text()
        plots = re.findall(r'<figure class="plot">.*?</figure>', page, flags=re.S)
        assert plots or mode == "advise", mode
        for i, plot in enumerate(plots):   # each plot alone on a page: a broken SVG leaves it white
            single = folder / f"plot{i}.html"
            single.write_text(f'<!doctype html><html><body style="margin:0;background:white">{plot}</body></html>')
            shot = folder / f"plot{i}.png"
            subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=900,500",
                            f"--screenshot={shot}", single.as_uri()], check=True, capture_output=True, timeout=120)
            pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
            dark = int((pixels.sum(-1) < 300).sum())                          # text, axes, lines
            coloured = int((pixels.max(-1) - pixels.min(-1) > 80).sum())      # the series
            assert dark > 500 and coloured > 200, (mode, i, dark, coloured)
    blank = tmp_path / "blank.html"           # the check itself: a plot that does not render fails it
    blank.write_text('<!doctype html><html><body><figure class="plot"><svg width="10" height="10"><path d="x"/>'
                     '</svg></figure></body></html>')
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,500",
                    f"--screenshot={tmp_path / 'blank.png'}", blank.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(tmp_path / "blank.png").convert("RGB")).astype(int)
    assert int((pixels.sum(-1) < 300).sum()) <= 500
