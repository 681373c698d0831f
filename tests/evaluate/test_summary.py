"""Summaries over seeds on results built by hand: means and spreads, the gain over scratch, the
negative-transfer flag; and the reports a saved result rebuilds into (`taskshare report`) carry those
values, the per-task table of a multi-task run, and the flag."""
import json

import pytest

from taskshare.cli import main
from taskshare.evaluate import summarize

# test accuracy by (strategy, labels per class) over seeds 0 and 1
SCORES = {("scratch", 5): (0.50, 0.60), ("linear_probe", 5): (0.70, 0.80), ("finetune", 5): (0.40, 0.55),
          ("scratch", "all"): (0.90, 0.90), ("linear_probe", "all"): (0.85, 0.85),
          ("auto -> finetune", "all"): (0.95, 0.97)}


def _rows():
    # scratch is not listed first on purpose: the summary puts it first
    return [{"strategy": name, "labels_per_class": shot, "seed": seed, "test": {"accuracy": score},
             "seconds": 2.0 + seed, "steps": 10 * (seed + 1), "cached": False}
            for (name, shot), scores in sorted(SCORES.items(), key=lambda kv: kv[0][0] == "scratch")
            for seed, score in enumerate(scores)]


def test_cells_hold_mean_sample_std_seconds_and_steps():
    s = summarize(_rows())
    assert s.strategies == ["scratch", "linear_probe", "finetune", "auto"]   # auto's rows group under auto
    assert s.shots == [5, "all"]
    cell = s.cells[("finetune", 5)]
    assert cell.mean == pytest.approx(0.475) and cell.n == 2
    assert cell.std == pytest.approx(0.075 * 2 ** 0.5)     # sample std: sqrt((0.075^2 + 0.075^2) / 1)
    assert cell.seconds == pytest.approx(2.5) and cell.steps == pytest.approx(15)
    assert cell.text() == "47.5 ± 10.6"
    assert s.best(5) == "linear_probe" and s.best("all") == "auto"


def test_gain_over_scratch_and_the_negative_transfer_flag_by_hand():
    s = summarize(_rows())
    assert s.gain("linear_probe", 5) == pytest.approx(0.20)
    assert s.gain("finetune", 5) == pytest.approx(-0.075)
    assert s.gain("linear_probe", "all") == pytest.approx(-0.05)
    assert s.gain("auto", "all") == pytest.approx(0.06)
    assert s.gain("scratch", 5) == 0.0
    assert s.gain("auto", 5) is None                        # auto did not run at 5 labels per class
    flagged = [(name, shot, round(g, 6)) for name, shot, g in s.negative_transfer()]
    assert flagged == [("linear_probe", "all", -0.05), ("finetune", 5, -0.075)]


def test_lower_is_better_metric_flips_the_sign_of_the_gain():
    rows = [{"strategy": n, "labels_per_class": 5, "seed": 0, "test": {"loss": v}, "seconds": 1.0}
            for n, v in (("scratch", 0.8), ("finetune", 0.5), ("linear_probe", 1.0))]
    s = summarize(rows, metric="loss", higher_is_better=False)
    assert s.gain("finetune", 5) == pytest.approx(0.3) and s.gain("linear_probe", 5) == pytest.approx(-0.2)
    assert [name for name, _, _ in s.negative_transfer()] == ["linear_probe"]
    assert s.best(5) == "finetune"


def test_no_scratch_means_no_gain_and_no_flag():
    rows = [r for r in _rows() if r["strategy"] != "scratch"]
    s = summarize(rows)
    assert s.gain("finetune", 5) is None and s.negative_transfer() == []


def test_transfer_reports_carry_the_table_the_gains_and_the_flag(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "results.json").write_text(json.dumps({"title": "hand-made", "results": _rows()}))
    assert main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    for text in ("| scratch | 55.0 ± 7.1 | 90.0 ± 0.0 |", "| linear_probe | **75.0 ± 7.1** | 85.0 ± 0.0 |",
                 "| finetune | 47.5 ± 10.6 |  |", "| auto |  | **96.0 ± 1.4** |", "| finetune | 15 |  |",
                 "negative transfer: finetune at 5 labels per class is 7.5 points below scratch",
                 "negative transfer: linear_probe at all labels per class is 5.0 points below scratch"):
        assert text in md, text
    assert "No negative transfer" not in md
    page = (tmp_path / "report.html").read_text()
    assert "<td class=best>75.0 ± 7.1</td>" in page and "<td>47.5 ± 10.6</td>" in page
    # gains paired by seed: finetune -10 and -5 points, linear_probe +20 twice
    assert "<td class=warn>-7.5 ± 3.5</td>" in page and "<td class=ok>+20.0 ± 0.0</td>" in page
    assert '<li class="warn">negative transfer: finetune at 5 labels per class is 7.5 points below scratch</li>' in page


def test_a_report_without_negative_transfer_says_so(tmp_path):
    rows = [r for r in _rows() if r["strategy"] != "finetune" and r["labels_per_class"] == 5]
    (tmp_path / "results.json").write_text(json.dumps({"title": "fine", "results": rows}))
    assert main(["report", str(tmp_path)]) == 0
    assert "No negative transfer: every strategy matched or beat scratch." in (tmp_path / "report.md").read_text()
    assert "<li>No negative transfer.</li>" in (tmp_path / "report.html").read_text()


def test_multitask_report_shows_each_task_value_delta_m_and_the_notes(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"mode": "single", "seed": 0, "main": {"a": 0.8125, "b": 0.25}, "delta_m": 0.0},
            {"mode": "hard", "seed": 0, "main": {"a": 0.7, "b": 0.375}, "delta_m": -3.5,
             "notes": ["hard sharing hurts task a"]}]
    (tmp_path / "multitask_results.json").write_text(json.dumps({"config": {"note": "why this regime"},
                                                                 "results": rows}))
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    cells = ["<td>single</td><td>0</td><td>0.812</td><td>0.250</td><td>+0.00</td>",
             "<td>hard</td><td>0</td><td>0.700</td><td>0.375</td><td>-3.50</td>"]
    assert all(c in page for c in cells), page
    assert '<p class="warn">hard sharing hurts task a</p>' in page and "<b>why this regime</b>" in page
