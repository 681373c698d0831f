"""The experiment modes by name: a config's `mode:` (transfer when absent) picks its runner, so the
command line looks a mode up instead of branching over them. Each mode's module registers its runner,
`runner(args, raw, console) -> exit status`, where `raw` is the config's mapping as read."""
from __future__ import annotations

from ..registry import Registry

RUNNERS: Registry = Registry("mode")


def run_config(args, console) -> int:
    """`taskshare run|pretrain|transfer CONFIG`: your own data and pretrained families go to the own-data
    experiment (its `mode:` is transfer or multitask), every other config to its mode's runner."""
    from ..config import load_yaml
    from .own import is_own_config, run_own_command
    raw = load_yaml(args.config)
    if is_own_config(raw):
        return run_own_command(args, raw, console)
    return RUNNERS.get(raw.get("mode", "transfer"))(args, raw, console)
