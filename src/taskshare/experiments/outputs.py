"""The output-folder guard: a run writes only into a folder that is new, empty, or a previous
taskshare run, so no command can scatter files into `/`, a home folder or someone's project.

A run folder is recognised by its marker file. Without the marker a non-empty folder is refused,
unless `overwrite` is given and none of the names a run writes is taken (nothing of the user's is
replaced); with the marker, a new run must say `overwrite` (taskshare's own files are removed first,
anything else is left alone) or `resume` (the run continues where it stopped).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import TaskshareError

MARKER = ".taskshare-run"

# Every entry a run writes at the top of its folder; --overwrite removes these and nothing else.
OWN_ENTRIES = (
    MARKER, "config.yaml", "results.json", "report.md", "report.html", "plot.svg", "models", "checkpoints",
    "pretrained.safetensors", "pretrained.json", "multitask_results.json", "multitask_report.md",
    "adapt_results.json", "advice.json", "affinity.json", "affinity.svg",
)

# Runs of their own inside a run's folder (the demo's second multi-task regime): --overwrite empties
# them the same way when they are marked as runs, and removes them once empty.
SUB_RUNS = ("multitask_small_trunk",)

# A run stopped by a bad input before training leaves only these: nothing to lose, so no --overwrite needed.
NOTHING_YET = (MARKER, "config.yaml")


def _forbidden(path: Path) -> str | None:
    """Why `path` (resolved) may never be an output folder, or None."""
    if path == Path(path.anchor):
        return "the root of the file system"
    if path == Path.home().resolve():
        return "your home folder"
    if path == Path.cwd().resolve():
        return "the working directory itself (name a sub-folder, e.g. runs/mine)"
    return None


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def prepare_output(path: str | Path, overwrite: bool = False, resume: bool = False, continues: bool = False) -> Path:
    """Check `path` as a run's output folder, create it and mark it; returns it.

    overwrite: a previous run's folder is emptied of taskshare's own files first; a folder of other
    files is accepted when none of them has a name a run writes. resume / continues:
    a previous run's folder is kept as it is (resuming an interrupted run; `transfer` after `pretrain`).
    Raises TaskshareError naming the folder and the way out when it cannot be used.
    """
    path = Path(path).expanduser()
    resolved = path.resolve()
    reason = _forbidden(resolved)
    if reason:
        raise TaskshareError(f"output folder {str(path)!r} is {reason}; a run needs a folder of its own")
    if resolved.exists() and not resolved.is_dir():
        raise TaskshareError(f"output {str(path)!r} is an existing file, not a folder; name a new or empty folder")
    names = {p.name for p in resolved.iterdir()} if resolved.is_dir() else set()
    if names and not (MARKER in names and names <= set(NOTHING_YET)):
        if not is_run_folder(resolved):
            shown = ", ".join(sorted(p.name for p in resolved.iterdir())[:5])
            clash = [name for name in OWN_ENTRIES if (resolved / name).exists()]
            if not overwrite:
                raise TaskshareError(f"output folder {str(path)!r} is not empty and holds no taskshare run ({shown}); "
                                     f"name a new or empty folder, or pass --overwrite to write beside these files")
            if clash:
                raise TaskshareError(f"output folder {str(path)!r} holds no taskshare run but has {', '.join(clash)}, "
                                     f"which a run would replace; name a new or empty folder")
        elif overwrite:
            _remove_own(resolved)
        elif not (resume or continues):
            raise TaskshareError(f"output folder {str(path)!r} holds a previous taskshare run; pass --overwrite to "
                                 f"replace it, --resume to continue it, or name another folder")
    resolved.mkdir(parents=True, exist_ok=True)
    marker = resolved / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"taskshare_run": True}) + "\n")
    return path


def _remove_own(folder: Path) -> None:
    for name in OWN_ENTRIES:
        entry = folder / name
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
    for name in SUB_RUNS:
        sub = folder / name
        if not sub.is_symlink() and is_run_folder(sub):
            _remove_own(sub)
            if not any(sub.iterdir()):
                sub.rmdir()
