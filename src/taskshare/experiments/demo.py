"""`taskshare demo`: the packaged transfer experiment, then the multi-task comparison in two regimes:
few labels per task (sharing pools them) and a small trunk (sharing starves it), one report for both."""
from __future__ import annotations

from pathlib import Path

from ..config import load_yaml
from .multitask import load_multitask, quick_multitask, report_multitask
from .runs import guard, packaged_config, rebuild_report
from .transfer import load_config, quick, run_transfer

REGIMES = ("demo_multitask.yaml", "demo_multitask_small.yaml")


def run_demo(args, console) -> int:
    config = load_config(packaged_config("demo.yaml"))
    regimes = [load_multitask(load_yaml(packaged_config(name))) for name in REGIMES]
    outs = [Path(args.out or regimes[0].output), Path(args.out or regimes[0].output) / "multitask_small_trunk"]
    guard(args, *[Path(args.out or config.output)] * (args.part in ("all", "transfer")),
          *outs * (args.part in ("all", "multitask")))     # every folder checked before anything trains
    status = 0
    if args.part in ("all", "transfer"):
        config = quick(config) if args.quick else config
        status = run_transfer(config, Path(args.out or config.output), console, "demo", None)
    if args.part in ("all", "multitask"):
        for regime, out in zip(regimes, outs):
            regime = quick_multitask(regime) if args.quick else regime
            status = status or report_multitask(regime, out, console)
        rebuild_report(outs[0])                          # one HTML report for the whole run, both regimes in it
    return status
