"""What every mode does around its experiment: check and mark the output folders before anything
trains, make training runs resumable under OUT/checkpoints, and log a finished run to the trackers
its YAML names."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import TaskshareError


def guard(args, *folders: Path, continues: bool = False) -> None:
    """Every output folder checked and marked before anything trains or is written (outputs.py)."""
    from .outputs import prepare_output
    for folder in dict.fromkeys(folders):
        prepare_output(folder, overwrite=getattr(args, "overwrite", False), resume=getattr(args, "resume", False),
                       continues=continues)


def track(config, out: Path) -> None:
    """The run's config, metrics and reports to the trackers its YAML names (track.py); rank 0 only."""
    from ..distributed import is_main
    if config.track and is_main():
        from ..config import to_dict
        from .track import log_run
        log_run(config.track, out, to_dict(config))


def resumable(train, out):
    """Run checkpoints for every training run of the experiment under OUT/checkpoints, resumed."""
    return replace(train, checkpoint_dir=str(Path(out) / "checkpoints"), resume=True,
                   checkpoint_every=train.checkpoint_every or 200)


def only_run(args, what: str) -> None:
    """Configs other than built-in transfer have one stage: `taskshare run`, not pretrain/transfer."""
    if args.command != "run":
        raise TaskshareError(f"'taskshare {args.command}' is for transfer configs; run {what} with 'taskshare run'")


def rebuild_report(out: Path) -> None:
    """report.html (and the Markdown) from the run's saved results, as every mode writes; rank 0 only."""
    from ..distributed import is_main
    if is_main():
        from ..evaluate.report.rebuild import rebuild
        rebuild(out)


def packaged_config(name: str) -> Path:
    """A config shipped inside the package (src/taskshare/configs/): the demo's."""
    from importlib import resources
    return Path(str(resources.files("taskshare") / "configs" / name))
