"""The `taskshare` command. The parser is built inside main(): nothing global."""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

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
    adv.add_argument("--out", default=None, help="output folder (default: the config's 'output')")
    adv.add_argument("--pretrained", default=None, help="score these weights instead of pretraining")
    adv.add_argument("--confirm", action="store_true", help="confirm each recommendation by a short sweep")
    adv.add_argument("--quick", action="store_true", help="the demo's small version (fewer samples and epochs)")
    adv.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    rep = sub.add_parser("report", help="rebuild a run's reports (report.md, report.html) from its saved results")
    rep.add_argument("run_dir", help="a run's output folder")
    sub.add_parser("strategies", help="list the transfer strategies")
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
    from .experiment import ExperimentConfig, load_config

    if args.command == "strategies":
        from .transfer import STRATEGIES
        import inspect
        import textwrap

        from rich.markup import escape
        for name in STRATEGIES.names():   # the docstring's first paragraph, whole, wrapped under its name
            doc = " ".join(inspect.cleandoc(STRATEGIES.get(name).__doc__ or "").split("\n\n")[0].split())
            lines = textwrap.wrap(doc, 78) or [""]
            console.print(f"[bold]{name:18}[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
            for line in lines[1:]:
                console.print(" " * 19 + line, highlight=False, soft_wrap=True, markup=False)
        return 0
    if args.command == "demo":
        configs = resources.files("taskshare") / "configs"
        status = 0
        from .config import load_yaml
        from .multitask_experiment import load_multitask
        config = load_config(Path(str(configs / "demo.yaml")))
        # two multi-task regimes: few labels per task (sharing pools them) and a small trunk (sharing starves it)
        regimes = [load_multitask(load_yaml(Path(str(configs / name))))
                   for name in ("demo_multitask.yaml", "demo_multitask_small.yaml")]
        outs = [Path(args.out or regimes[0].output), Path(args.out or regimes[0].output) / "multitask_small_trunk"]
        _guard(args, *[Path(args.out or config.output)] * (args.part in ("all", "transfer")),
               *outs * (args.part in ("all", "multitask")))
        if args.part in ("all", "transfer"):
            config = _quick(config) if args.quick else config
            status = _run(config, Path(args.out or config.output), console, "demo", None)
        if args.part in ("all", "multitask"):
            for mt, out in zip(regimes, outs):
                mt = _quick_multitask(mt) if args.quick else mt
                status = status or _run_multitask(mt, out, console)
        if args.part in ("all", "multitask"):   # one HTML report for the whole run, both regimes in it
            from .evaluate.report.rebuild import rebuild
            rebuild(outs[0])
        return status
    if args.command in ("predict", "export"):
        from .serve.command import run_serve_command
        return run_serve_command(args, console)
    if args.command == "report":
        from .distributed import is_main
        if not is_main():
            return 0
        from .evaluate.report.rebuild import rebuild
        for path in rebuild(args.run_dir):
            console.print(f"wrote {path}")
        return 0
    if args.command == "advise":
        from .advise.command import run_advise
        path = Path(args.config) if args.config else Path(str(resources.files("taskshare") / "configs" / "demo.yaml"))
        config = load_config(path)
        config = _quick(config) if args.quick else config
        _guard(args, Path(args.out or config.output))
        run_advise(config, Path(args.out or config.output), console, args.pretrained, args.confirm)
        from .evaluate.report.rebuild import rebuild
        rebuild(Path(args.out or config.output))      # report.html, as every mode writes
        return 0
    from .config import load_yaml
    raw = load_yaml(args.config)
    from .own_experiment import is_own_config
    if is_own_config(raw):                # your own data source, or a pretrained model family
        from .own_experiment import run_own_command
        return run_own_command(args, raw, console)
    if raw.get("mode") == "multitask":
        if args.command != "run":
            raise TaskshareError(f"'taskshare {args.command}' is for transfer configs; run a multi-task config with 'taskshare run'")
        from .multitask_experiment import load_multitask
        mt = load_multitask(raw)
        from .preflight import check_multitask
        check_multitask(mt)
        _guard(args, Path(args.out or mt.output))
        if args.resume:
            mt = replace(mt, multitask=replace(mt.multitask, train=_resumable(mt.multitask.train, args.shared_out or mt.output)))
        return _run_multitask(mt, Path(args.out or mt.output), console)
    if raw.get("mode") == "adapt":
        if args.command != "run":
            raise TaskshareError(f"'taskshare {args.command}' is for transfer configs; run an adaptation config with 'taskshare run'")
        from .adapt_experiment import load_adapt, run_adapt
        ad = load_adapt(raw)
        from .preflight import check_adapt
        check_adapt(ad)
        _guard(args, Path(args.out or ad.output))
        if args.resume:
            ad = replace(ad, adapt=replace(ad.adapt, train=_resumable(ad.adapt.train, args.shared_out or ad.output)))
        result = run_adapt(ad, Path(args.out or ad.output), console)
        from .evaluate.report.adapt import below_chance
        for method in below_chance(result):
            console.print(f"[yellow]{method}: target {result['metric']} is at or below chance "
                          f"({result['chance'] * 100:.1f}%)[/]", highlight=False)
        from .evaluate.report.rebuild import rebuild
        rebuild(Path(args.out or ad.output))
        _track(ad, Path(args.out or ad.output))
        return 0
    config = load_config(args.config)
    out = Path(args.out or config.output)
    shared = Path(args.shared_out or config.output)
    if getattr(args, "resume", False):
        config = replace(config, pretrain=replace(config.pretrain, train=_resumable(config.pretrain.train, shared)),
                         transfer=replace(config.transfer, train=_resumable(config.transfer.train, shared)))
    _guard(args, out, continues=args.command == "transfer")   # transfer continues the pretrain run's folder
    pretrained = getattr(args, "pretrained", None)
    if args.command == "transfer":
        pretrained = pretrained or config.pretrain.checkpoint or str(shared / "pretrained.safetensors")
    return _run(config, out, console, args.command, pretrained)


def _guard(args, *folders: Path, continues: bool = False) -> None:
    """Every output folder checked and marked before anything trains or is written (outputs.py)."""
    from .outputs import prepare_output
    for folder in dict.fromkeys(folders):
        prepare_output(folder, overwrite=getattr(args, "overwrite", False), resume=getattr(args, "resume", False),
                       continues=continues)


def _track(config, out: Path) -> None:
    """The run's config, metrics and reports to the trackers its YAML names (track.py); rank 0 only."""
    from .distributed import is_main
    if config.track and is_main():
        from .config import to_dict
        from .track import log_run
        log_run(config.track, out, to_dict(config))


def _resumable(train, out):
    """Run checkpoints for every training run of the experiment under OUT/checkpoints, resumed."""
    return replace(train, checkpoint_dir=str(Path(out) / "checkpoints"), resume=True,
                   checkpoint_every=train.checkpoint_every or 200)


def _quick_multitask(config):
    data = replace(config.data, scenes=min(config.data.scenes, 600))   # a few-label regime stays few
    spec = replace(config.multitask, train=replace(config.multitask.train, epochs=3, min_steps=30))
    return replace(config, data=data, multitask=spec)


def _run_multitask(config, out: Path, console: Console) -> int:
    from .evaluate.report.sharing import print_sharing
    from .multitask_experiment import run_multitask
    started = time.perf_counter()
    tasks, rows = run_multitask(config, out, console)
    print_sharing(console, tasks, rows, "multi-task: one model per task vs sharing")
    if config.note:
        console.print(config.note, style="bold", markup=False, highlight=False)
    from .distributed import is_main
    if is_main():
        from .evaluate.report.rebuild import rebuild
        rebuild(out)                                  # report.html, as every mode writes
    _track(config, out)
    console.print(f"done in {time.perf_counter() - started:.0f}s; report: {out / 'multitask_report.md'}")
    return 0


def _quick(config):
    """A small version of the demo for a first look and for tests."""
    src = replace(config.source, num_samples=6000)
    tgt = replace(config.target, num_samples=6000)
    pre = replace(config.pretrain, train=replace(config.pretrain.train, epochs=8))
    tr = replace(config.transfer, shots=[5, "all"], strategies=["scratch", "linear_probe", "finetune", "lp_ft", "auto"],
                 train=replace(config.transfer.train, epochs=10))
    return replace(config, source=src, target=tgt, pretrain=pre, transfer=tr)


def _preflight(config, target, source=None, in_features=None) -> None:
    from .preflight import check_transfer
    from .validate import model_arguments
    if target is not None:
        check_transfer(config, target, source, in_features)
    else:
        from .models.zoo import MODELS
        model_arguments(config.model.name, MODELS.get(config.model.name), config.model.args)


def _run(config, out: Path, console: Console, command: str, pretrained_path: str | None) -> int:
    from .config import to_dict
    from .evaluate import summarize
    from .evaluate.report.transfer import print_summary, write_reports
    from .experiment import load_pretrained, load_task_data, pretrain, transfer_all
    from .io import atomic_write_bytes, read_meta

    import yaml
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
    started, generated = time.perf_counter(), {}
    source_size = None
    if command in ("run", "demo", "pretrain"):
        source = load_task_data(config.source, generated)
        target = None if command == "pretrain" else load_task_data(config.target, generated)
        _preflight(config, target, source)                 # before the source model trains
        console.print(f"source task A: {len(source.y)} training examples, {source.num_classes} classes")
        model, metrics = pretrain(config, source, out)
        source_size = len(source.y)
        console.print(f"pretrained {config.model.name} on A: test accuracy {metrics.get('accuracy', float('nan')) * 100:.1f}%"
                      f"  -> {out / 'pretrained.safetensors'}")
        if command == "pretrain":
            return 0
    else:
        path = Path(pretrained_path or config.pretrain.checkpoint or out / "pretrained.safetensors")
        meta = read_meta(path)
        source_size = meta.get("source_size")
        target = load_task_data(config.target, generated)
        _preflight(config, target, in_features=meta.get("model", {}).get("in_features"))
        model, _ = load_pretrained(config, path)
    console.print(f"target task B: {len(target.y)} training examples, {target.num_classes} classes; "
                  f"shots {config.transfer.shots}, seeds {config.transfer.seeds}")
    rows = transfer_all(config, model, target, source_size,
                        on_result=lambda r: console.print(
                            f"  k={r['labels_per_class']!s:>4} seed={r['seed']} {r['strategy']:<34} "
                            f"test acc {r['test']['accuracy'] * 100:5.1f}%  {r['seconds']:5.1f}s"
                            + (" cached" if r["cached"] else ""), highlight=False, soft_wrap=True), out_dir=out)
    summary = summarize(rows)
    title = f"{config.model.name}: transfer A -> B"
    print_summary(console, summary, title)
    paths = write_reports(out, rows, summary, title, {"config": to_dict(config)})
    console.print(f"done in {time.perf_counter() - started:.0f}s; report: {paths['md']} and {paths['html']}")
    _track(config, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
