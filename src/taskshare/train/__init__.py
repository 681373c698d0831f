"""Training: the loop, its config, devices and precision, checkpoints."""
from ..io import load_into, load_tensors, read_meta
from .checkpoint import save
from .config import TrainConfig
from .device import resolve_device
from .loop import History, evaluate, fit, predict

__all__ = ["History", "TrainConfig", "evaluate", "fit", "load_into", "load_tensors", "predict", "read_meta",
           "resolve_device", "save"]
