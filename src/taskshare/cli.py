"""The `taskshare` command. The parser is built inside main(): nothing global."""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile

from rich.console import Console
from rich.logging import RichHandler

from .errors import TaskshareError

OVERWRITE_HELP = "replace a previous taskshare run in the output folder (only taskshare's own files)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="taskshare", description="Transfer and multi-task learning, measured against the honest baseline.")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="pretrain on MNIST-1D digits 0-4, transfer to 5-9 with every strategy")
    demo.add_argument("--out", default=None, help="output folder (default: runs/demo)")
    demo.add_argument("--quick", action="store_true", help="fewer samples, shots, strategies and modes (about 30 s)")
    demo.add_argument("--part", choices=["all", "transfer", "multitask"], default="all", help="which part to run")
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    for name, text in (("run", "run a config in its mode: transfer (the default: pretrain on the source, then transfer "
                               "to the target), multitask (one model per task against sharing) or adapt (domain "
                               "adaptation against source-only)"),
                       ("pretrain", "train on the source task and save pretrained.safetensors"),
                       ("transfer", "transfer a pretrained model to the target with every strategy")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("config", help="YAML experiment file")
        cmd.add_argument("--out", default=None, help="output folder (overrides the config's 'output')")
        if name == "transfer":
            cmd.add_argument("--pretrained", default=None, help="weights to start from (default: OUT/pretrained.safetensors)")
        cmd.add_argument("--resume", action="store_true",
                         help="checkpoint every training run under OUT/checkpoints and continue an interrupted run")
        cmd.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    adv = sub.add_parser("advise", help="before training: data facts, transferability scores, a recommended strategy")
    adv.add_argument("config", nargs="?", default=None, help="YAML experiment file (default: the demo's)")
    adv.add_argument("--out", default=None, help="output folder (default: the config's 'output' with _advice "
                                                 "added, e.g. runs/demo_advice, so the run's own folder stays free)")
    adv.add_argument("--pretrained", default=None, help="score these weights instead of pretraining")
    adv.add_argument("--confirm", action="store_true", help="confirm each recommendation by a short sweep")
    adv.add_argument("--quick", action="store_true", help="the demo's small version (fewer samples and epochs)")
    adv.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    rep = sub.add_parser("report", help="rebuild a run's reports (report.md, report.html) from its saved results")
    rep.add_argument("run_dir", help="a run's output folder")
    strat = sub.add_parser("strategies", help="list the transfer strategies, one line each")
    strat.add_argument("--verbose", "-v", action="store_true", help="each strategy's whole description")
    pred = sub.add_parser("predict", help="predict with a run's model: one row per input, every task's class and probabilities")
    pred.add_argument("run_dir", help="a run folder holding run.json and model.safetensors")
    pred.add_argument("inputs", help="a folder of images, an image, a file list (.txt), a CSV, or a text/JSONL file")
    pred.add_argument("--out", default="predictions.csv", help="where the CSV goes (default: predictions.csv)")
    exp = sub.add_parser("export", help="export a run's model with its preprocessing inside, checked against PyTorch")
    exp.add_argument("run_dir", help="a run folder holding run.json and model.safetensors")
    exp.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="the file format (default: onnx)")
    exp.add_argument("--out", default=None, help="the file to write (default: RUN_DIR/model.onnx or model.torchscript.pt)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .distributed import is_main, leave, setup_from_env
    import torch.distributed as dist
    in_group = dist.is_available() and dist.is_initialized()
    setup_from_env()                      # under torchrun: join the process group (gloo on CPU, NCCL on GPU)
    joined = not in_group and dist.is_available() and dist.is_initialized()
    console = Console(quiet=not is_main())
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
    try:
        with _rank_outputs(args):
            return _dispatch(args, console)
    except TaskshareError as exc:
        from rich.markup import escape
        message = escape(" ".join(str(exc).split()))  # one line whatever the terminal width (YAML errors span lines)
        console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    finally:
        if joined:                        # a group this command joined, it leaves
            leave()


@contextlib.contextmanager
def _rank_outputs(args):
    """Under several processes only rank 0 writes the run's files. The others run the same code (so
    their collective calls stay matched) with their outputs sent to a scratch folder, removed at the
    end; run checkpoints and pretrained weights are still read from the real output folder
    (args.shared_out), which must be on storage every node sees."""
    from .distributed import is_main
    args.shared_out = getattr(args, "out", None)
    if is_main() or not hasattr(args, "out"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="taskshare-rank-") as scratch:
        args.out = scratch
        yield


def _dispatch(args, console: Console) -> int:
    """One lookup: the command's runner (a config's own `mode:` is looked up by run_config)."""
    return _commands()[args.command](args, console)


def _commands() -> dict:
    from .experiments import run_advise_command, run_config, run_demo
    from .serve.command import run_serve_command
    return {"run": run_config, "pretrain": run_config, "transfer": run_config, "demo": run_demo,
            "advise": run_advise_command, "report": _report, "strategies": _strategies,
            "predict": run_serve_command, "export": run_serve_command}


def _strategies(args, console: Console) -> int:
    """The registered strategies, one line each: the name and its docstring's first paragraph shortened
    to the line; --verbose wraps the whole paragraph under the name."""
    import inspect
    import textwrap

    from rich.markup import escape

    from .transfer import STRATEGIES
    for name in STRATEGIES.names():
        doc = " ".join(inspect.cleandoc(STRATEGIES.get(name).__doc__ or "").split("\n\n")[0].split())
        lines = textwrap.wrap(doc, 78) if args.verbose else [textwrap.shorten(doc, 61, placeholder=" ...", break_on_hyphens=False)]   # 80 columns
        lines = lines or [""]
        console.print(f"[bold]{name:18}[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
        for line in lines[1:]:
            console.print(" " * 19 + line, highlight=False, soft_wrap=True, markup=False)
    if not args.verbose:
        console.print("(taskshare strategies --verbose: each one's whole description)", highlight=False)
    return 0


def _report(args, console: Console) -> int:
    from .distributed import is_main
    if not is_main():
        return 0
    from .evaluate.report.rebuild import rebuild
    for path in rebuild(args.run_dir):
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
