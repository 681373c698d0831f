"""taskshare: transfer learning, multi-task learning and domain adaptation for PyTorch, always
compared with the honest baseline."""
from .data.multitask import MultiTaskDataset
from .errors import ConfigError, NonFiniteError, TaskshareError
from .models import CrossStitch, HardSharing, SoftSharing, TrunkHead, layer_groups, split_head, transfer_model
from .tasks import Task
from .train import Balancing, TrainConfig, evaluate, fit
from .train.multitask import evaluate_multitask, fit_multitask
from .transfer import STRATEGIES, compare, run_strategy

__version__ = "0.1.0"


def load(run_dir, device="cpu"):
    """A run folder's trained model with its preprocessing, tasks and class names (taskshare.serve)."""
    from .serve import load as load_run
    return load_run(run_dir, device)


__all__ = ["Balancing", "ConfigError", "CrossStitch", "HardSharing", "MultiTaskDataset", "NonFiniteError", "STRATEGIES",
           "SoftSharing", "TaskshareError", "Task", "TrainConfig", "TrunkHead", "compare", "evaluate",
           "evaluate_multitask", "fit", "fit_multitask", "layer_groups", "load", "run_strategy", "split_head",
           "transfer_model"]
