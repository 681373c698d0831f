"""Training: the loop, its config, devices and precision, checkpoints."""
from .checkpoint import load_into, load_tensors, read_meta, save
from .config import TrainConfig
from .device import resolve_device
from .loop import History, evaluate, fit, predict

__all__ = ["History", "TrainConfig", "evaluate", "fit", "load_into", "load_tensors", "predict", "read_meta",
           "resolve_device", "save"]
