"""`taskshare advise`: before any fine-tuning, what the data and the pretrained model say, and which
strategy to use at each number of labels per class (optionally confirmed by a short sweep)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from ..data import few_shot
from .runs import guard, packaged_config, rebuild_report
from .task_data import load_task_data
from .transfer import ExperimentConfig, load_config, load_pretrained, pretrain, quick
from ..tasks import Task
from ..io import atomic_write_bytes, read_meta
from ..advise import advise


def run_advise_command(args, console) -> int:
    """`taskshare advise [CONFIG]` (the demo's config when none is given); a config with your own data
    (own.py) is advised by own_advise.py."""
    path = Path(args.config) if args.config else packaged_config("demo.yaml")
    from ..config import load_yaml
    from .own import is_own_config
    raw = load_yaml(path)
    if is_own_config(raw):
        from .own_advise import run_own_advise_command
        return run_own_advise_command(args, raw, console)
    config = load_config(path)
    config = quick(config) if args.quick else config
    out = advice_folder(args.out, config.output)
    guard(args, out)
    run_advise(config, out, console, args.pretrained, args.confirm)
    rebuild_report(out)                       # report.html, as every mode writes
    return 0


def advice_folder(out: str | None, output: str) -> Path:
    """`--out`, else the config's output with `_advice` added (runs/demo -> runs/demo_advice): advice
    comes before training, and in the run's own folder it made the run that follows (or the demo,
    run first) refuse the folder, and --overwrite delete the other's reports."""
    if out:
        return Path(out)
    run = Path(output)
    return run.with_name(run.name + "_advice") if run.name else run / "advice"


def run_advise(config: ExperimentConfig, out: Path, console, pretrained_path: str | None = None,
               confirm: bool = False) -> list[dict]:
    generated: dict = {}
    if pretrained_path or config.pretrain.checkpoint:
        path = pretrained_path or config.pretrain.checkpoint
        model, _ = load_pretrained(config, path)  # type: ignore[arg-type]
        source_size = read_meta(path).get("source_size")  # type: ignore[arg-type]
    else:
        source = load_task_data(config.source, generated)
        model, metrics = pretrain(config, source, out)
        source_size = len(source.y)
        console.print(f"pretrained {config.model.name} on the source: test accuracy "
                      f"{metrics.get('accuracy', float('nan')) * 100:.1f}%")
    target = load_task_data(config.target, generated)
    task = Task("target", "multiclass", num_classes=target.num_classes)
    table = advice_table()
    results, dropped = [], []
    per_class, val = int(np.bincount(target.y).min()), config.transfer.val_per_class
    for shot in config.transfer.shots:
        if shot != "all" and shot + (val or shot) > per_class:   # run's rule: k to train + the validation share
            dropped.append(shot)
            continue
        splits = few_shot((target.x, target.y), shot, seed=0, val_per_class=config.transfer.val_per_class,
                          test=(target.x_test, target.y_test))
        advice = advise(splits.train, task, {config.model.name: model}, source_size=source_size)
        spec = {"name": advice.strategy, **advice.strategy_args} if advice.strategy_args else advice.strategy
        row = {"labels_per_class": shot, "advice": advice.to_dict(), "strategy": spec}
        if confirm:
            row["confirmed"] = _confirm(config, model, target, task, splits, spec, source_size, shot)
        results.append(row)
        add_advice_row(table, shot, advice)
    # every size in the config is scored unless it cannot be drawn; say which and why
    note = (f"not scored: k={', '.join(map(str, dropped))} labels per class; each needs k to train + {val or 'k'} to "
            f"validate of every class, and the target's smallest class has {per_class} examples (taskshare run "
            f"stops at these sizes too)") if dropped else ""
    write_advice(out, console, table, results, note)
    return results


def advice_table() -> Table:
    table = Table(title="advice before training: the pretrained trunk on the target's labelled examples")
    for column in ("labels/class", "examples", "LogME", "random trunk", "LEEP", "NCE", "H-score", "recommended"):
        table.add_column(column, justify="right" if column != "recommended" else "left")
    return table


def add_advice_row(table: Table, shot, advice) -> None:
    best = advice.candidates[0]
    args = ", ".join(f"{k}={v}" for k, v in advice.strategy_args.items())
    # LEEP and NCE need the source head: a hub model's trunk comes without one
    leep, nce = (f"{v:.3f}" if v is not None else "-" for v in (best.leep, best.nce))
    table.add_row(str(shot), str(advice.facts["samples"]), f"{best.logme:.3f}", f"{advice.random_logme:.3f}",
                  leep, nce, f"{best.h_score:.2f}", advice.strategy + (f"({args})" if args else ""))


def write_advice(out: Path, console, table: Table, results: list[dict], note: str = "") -> None:
    """The table (and `note` under it) and the reasons in the terminal, advice.json in the folder."""
    console.print(table)
    if note:
        console.print(note, highlight=False)
    _print_reasons(console, results)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "advice.json", json.dumps(results, indent=2, default=str).encode())


def _print_reasons(console, results: list[dict]) -> None:
    """Why each recommendation, and what the confirming sweep found when one ran."""
    for row in results:
        console.print(f"k={row['labels_per_class']}: {row['advice']['reason']}", highlight=False)
        if "confirmed" in row:
            c = row["confirmed"]
            console.print(f"  confirmed by a sweep: recommended {c['recommended'] * 100:.1f}%, the sweep's pick "
                          f"({c['sweep_choice']}) {c['sweep'] * 100:.1f}% test accuracy", highlight=False)


def _confirm(config, model, target, task, splits, spec, source_size, shot) -> dict:
    """Train the recommended strategy and auto's validation sweep on the same split; report both."""
    from ..models.trunk_head import transfer_model
    from ..transfer import compare
    base = transfer_model(model, task, example=torch.as_tensor(target.x[:2]))
    rows = compare(base, task, splits, [spec, {"name": "auto", "confirm": True}], replace(config.transfer.train, seed=0),
                   source_size, shot)
    name = spec["name"] if isinstance(spec, dict) else spec
    recommended = next(r for r in rows if r.strategy.split("(")[0].split(" ")[0] == name)
    sweep = next(r for r in rows if r.strategy.startswith("auto"))
    return {"recommended": recommended.test["accuracy"], "sweep": sweep.test["accuracy"], "sweep_choice": sweep.strategy}
