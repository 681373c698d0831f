"""benchmarks/domain_adaptation.py --update: re-measured rows of some methods replace theirs in the
published section, and give the section a merge of every part would have; a re-measured source-only
that differs from the published one stops it."""
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("domain_adaptation", BENCHMARKS / "domain_adaptation.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _runs(*targets, warning=None):
    return [{"target": t, "hindsight": t + 1.0, "source_val": 80.0, "warning": warning, "seconds": 1.0} for t in targets]


def _part(cells: dict, argv: str, warnings=()):
    return {"args": {"seeds": 2, "images": 10, "epochs": 1, "selection": "source"}, "argv": argv.split(),
            "device": "CPU", "cells": cells, "warnings": list(warnings)}


def test_update_replaces_the_rerun_rows_as_a_merge_would(bench):
    grid = _part({"rot30/bn": {"source_only": _runs(50.0, 52.0), "dann": _runs(55.0, 57.0), "shot": _runs(40.0, 42.0)},
                  "mnist1d/plain": {"source_only": _runs(20.0, 21.0), "dann": _runs(17.0, 17.5), "shot": _runs(12.0, 14.0)}},
                 "--save a.json", ["mnist1d/plain/seed 0: shot: went wrong; badly"])
    rerun = _part({"rot30/bn": {"source_only": _runs(50.0, 52.0), "shot": _runs(60.0, 62.0)},
                   "mnist1d/plain": {"source_only": _runs(20.0, 21.0), "shot": _runs(20.0, 21.0)}},
                  "--methods source_only shot --save b.json", ["mnist1d/plain/seed 1: shot: kept; the source model"])
    published = bench.section([grid], "source")
    assert "shot on mnist1d/plain (-7.5)" in published and "dann on mnist1d/plain (-3.2)" in published
    updated = bench.update(published, [rerun], ["b.json"])
    merged = bench.section([grid, rerun], "source")
    assert updated.split("\n")[1:] == merged.split("\n")[1:]      # all but the commands line
    assert "| shot | 61.0 ± 1.4 | +10.0 |" in updated and "shot on mnist1d" not in updated
    assert "dann on mnist1d/plain (-3.2)" in updated and "went wrong" not in updated and "kept; the source" in updated
    assert "--update b.json" in updated.split("\n")[0]


def test_update_refuses_when_source_only_was_not_reproduced(bench):
    grid = _part({"rot30/bn": {"source_only": _runs(50.0, 52.0), "shot": _runs(40.0, 42.0)}}, "--save a.json")
    rerun = _part({"rot30/bn": {"source_only": _runs(50.0, 52.5), "shot": _runs(60.0, 62.0)}}, "--save b.json")
    with pytest.raises(SystemExit, match="source_only re-measured"):
        bench.update(bench.section([grid], "source"), [rerun], ["b.json"])
    missing = _part({"rot45/bn": {"source_only": _runs(50.0, 52.0), "shot": _runs(60.0, 62.0)}}, "--save c.json")
    with pytest.raises(SystemExit, match="every published cell"):
        bench.update(bench.section([grid], "source"), [missing], ["c.json"])
