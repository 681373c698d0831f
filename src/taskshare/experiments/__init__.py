"""Running experiments: one module per mode (transfer, multitask, adapt, advise; own.py for your own
data and pretrained families), the specs they share (specs.py), and what every run does around
them (runs.py: output folders, resuming, trackers). Only the command line imports this package.

Importing the mode modules registers their runners in `modes.RUNNERS`, keyed by a config's `mode:`."""
from . import adapt, multitask, transfer  # noqa: F401  (each registers its runner)
from .advise import run_advise_command
from .demo import run_demo
from .modes import RUNNERS, run_config

__all__ = ["RUNNERS", "run_advise_command", "run_config", "run_demo"]
