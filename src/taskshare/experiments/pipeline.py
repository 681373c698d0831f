"""End-to-end versus a pipeline. A `Pipeline` is a chain of stages x -> z1 -> ... -> y; each stage is
an nn.Module trainable on its own labelled data (`fit_stage`), the composition runs as one model, and
`fit` on (x, y) pairs fine-tunes it end to end (every glue must then be differentiable)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from ..train import TrainConfig
from ..train.epoch_end import ends_below
from ..train.loop import History, fit
from ..train.predict import evaluate


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


def fit_end_to_end(pipeline: Pipeline, task: Task, train: Any, val: Any = None, config: TrainConfig | None = None,
                   keep_start: bool = True) -> History:
    """Fine-tune the whole composition on (x, y) pairs. With validation data and `keep_start`, the
    composed pipeline is scored on it first, and where no fine-tuned epoch beats that score the
    pipeline keeps the weights it started with (`History.kept_start`): `fit` keeps the best of its own
    epochs only, and a few (x, y) pairs can pull stages trained on plentiful data of their own below
    where they started (reading digits on canvases: 84% and 68% against the composed 90-91% with 100
    pairs, benchmarks/pipeline_vs_end_to_end.py)."""
    start = None
    if keep_start and val is not None:
        start_score = evaluate(pipeline, task, val)[task.main_metric]
        if start_score == start_score:       # NaN: nothing to compare against
            start = (float(start_score), copy.deepcopy(pipeline.state_dict()))
    history = fit(pipeline, task, train, val, config)
    if start is not None and ends_below(history.best_score, start[0], task.higher_is_better):
        pipeline.load_state_dict(start[1])
        history.best_score, history.best_epoch, history.kept_start = start[0], -1, True
    return history
