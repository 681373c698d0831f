"""Training: the loop, its config, devices and precision, checkpoints; the engines that compute
per-task gradients and write .grad, and Balancing, the call that replaces loss.backward() in any loop."""
from ..io import load_into, load_tensors, read_meta
from .checkpoint import save
from .config import TrainConfig
from .device import resolve_device
from .drop_in import Balancing
from .hooks import LoopHooks
from .loop import History, LoopOptions, evaluate, fit, predict

__all__ = ["Balancing", "History", "LoopHooks", "LoopOptions", "TrainConfig", "evaluate", "fit", "load_into", "load_tensors", "predict", "read_meta",
           "resolve_device", "save"]
