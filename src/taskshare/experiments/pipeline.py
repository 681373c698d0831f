"""End-to-end versus a pipeline. A `Pipeline` is a chain of stages x -> z1 -> ... -> y; each stage is
an nn.Module trainable on its own labelled data (`fit_stage`), the composition runs as one model, and
`fit` on (x, y) pairs fine-tunes it end to end (every glue must then be differentiable)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from ..train import TrainConfig
from ..train.loop import History, fit


@dataclass
class Stage:
    """name, the module, and `inputs(x, previous)` building this stage's input from the pipeline's
    input and the previous stage's output (default: the previous output)."""

    name: str
    module: nn.Module
    inputs: Callable[[Tensor, Tensor], Tensor] | None = None


class Pipeline(nn.Module):
    def __init__(self, stages: Sequence[Stage]):
        super().__init__()
        if not stages:
            raise TaskshareError("a pipeline needs at least one stage")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise TaskshareError(f"stage names must be unique, got {names}")
        self.names = names
        self.glue = {s.name: s.inputs for s in stages}
        self.stages = nn.ModuleDict({s.name: s.module for s in stages})

    def forward(self, x: Tensor) -> Tensor:
        z = x
        for name in self.names:
            glue = self.glue[name]
            z = self.stages[name](glue(x, z) if glue is not None else z)
        return z

    def stage(self, name: str) -> nn.Module:
        if name not in self.stages:
            raise TaskshareError(f"no stage {name!r}; stages are {self.names}")
        return self.stages[name]


def fit_stage(pipeline: Pipeline, name: str, task: Task, train: Any, val: Any = None,
              config: TrainConfig | None = None) -> History:
    """Train one stage alone on its own (input, target) data."""
    return fit(pipeline.stage(name), task, train, val, config)


def fit_end_to_end(pipeline: Pipeline, task: Task, train: Any, val: Any = None, config: TrainConfig | None = None) -> History:
    """Fine-tune the whole composition on (x, y) pairs."""
    return fit(pipeline, task, train, val, config)
