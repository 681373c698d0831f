from dataclasses import dataclass

from ..errors import TaskshareError
from .base import STRATEGIES, DataFacts, Stage, Strategy


@STRATEGIES.register("last_k")
@dataclass
class LastK(Strategy):
    """Retrain the last k layer groups of the trunk plus the head; the first groups stay frozen."""

    name = "last_k"
    k: int = 1

    def stages(self, n_groups: int, facts: DataFacts) -> list[Stage]:
        if not 0 <= self.k <= n_groups - 1:
            raise TaskshareError(f"last_k: k={self.k} but the trunk has {n_groups - 1} layer groups; "
                                 f"expected 0 <= k <= {n_groups - 1}")
        return [Stage(f"last_{self.k}", train_last=self.k + 1)]
