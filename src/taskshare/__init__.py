"""taskshare: transfer learning, multi-task learning and domain adaptation for PyTorch, always
compared with the honest baseline."""
from .errors import ConfigError, NonFiniteError, TaskshareError
from .models import TrunkHead, layer_groups, split_head, transfer_model
from .tasks import Task
from .train import TrainConfig, evaluate, fit
from .transfer import STRATEGIES, compare, run_strategy

__version__ = "0.1.0"
__all__ = ["ConfigError", "NonFiniteError", "STRATEGIES", "TaskshareError", "Task", "TrainConfig", "TrunkHead",
           "compare", "evaluate", "fit", "layer_groups", "run_strategy", "split_head", "transfer_model"]
