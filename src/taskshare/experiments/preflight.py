"""Checks an experiment passes before anything trains: every name resolves (strategies, balancing and
adaptation methods, model arguments), the data fit the task and the model, and every requested number
of labels per class exists. A typo found after an hour of pretraining is an hour lost.

The command runs these right after loading the data; the same functions serve Python callers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, TaskshareError


def check_shots(shots: Any, where: str = "transfer.shots") -> None:
    """Labels per class: positive whole numbers or 'all' (5.5 would train on 5 and report 5.5)."""
    for shot in shots:
        if shot != "all" and (not isinstance(shot, int) or isinstance(shot, bool) or shot < 1):
            raise ConfigError.at(where, f" has {shot!r}; expected positive integers or 'all'")


def check_strategies(strategies: Any, where: str = "config.transfer.strategies") -> None:
    """Every strategy name and its hyperparameters resolve."""
    from ..transfer import build_strategy
    for i, spec in enumerate(strategies):
        try:
            build_strategy(spec)
        except TaskshareError as exc:
            raise ConfigError(f"{where}[{i}]: {exc}") from None


def check_transfer(config: Any, target: Any, source: Any = None, in_features: int | None = None) -> None:
    """A transfer experiment (ExperimentConfig) against its loaded data (experiment.TaskData):
    strategies, model arguments, input width (the source's, or `in_features` of saved weights) and
    labels per class for every shot."""
    from .track import check_spec
    check_spec(config.track)
    check_strategies(config.transfer.strategies)
    config.model.check()
    width = in_features if in_features is not None else (source.x.shape[1] if source is not None else None)
    if width is not None and target.x.shape[1] != width:
        origin = "the pretrained weights take" if in_features is not None else "the source data have"
        raise TaskshareError(f"the target inputs have {target.x.shape[1]} features per example but {origin} "
                             f"{width}; source and target need inputs of the same width")
    if source is not None and source.x.shape[1:] != target.x.shape[1:]:
        raise TaskshareError(f"the target inputs have shape {target.x.shape[1:]} per example but the source's are "
                             f"{source.x.shape[1:]}; expected the same shape")
    per_class = np.bincount(target.y, minlength=target.num_classes)
    val = config.transfer.val_per_class
    for shot in config.transfer.shots:
        if shot == "all":
            continue
        needed = shot + (val or shot)
        if shot > per_class.min():
            raise TaskshareError(f"shots={shot} labels per class, but the target's smallest class has "
                                 f"{per_class.min()} training examples")
        if needed > per_class.min():
            raise TaskshareError(f"shots={shot} labels per class and {val or shot} validation examples per class "
                                 f"need {needed} examples of every class, but the target's smallest class has "
                                 f"{per_class.min()}; lower the shots or set transfer.val_per_class")


def check_multitask(config: Any) -> None:
    """A multi-task experiment: the balancing method and the model's arguments resolve."""
    from .track import check_spec
    check_spec(config.track)
    config.model.check()
    check_balancer(config.multitask.balancer, len(config.data.tasks) or len(config.data.digits))


def check_balancer(balancer: Any, tasks: int) -> None:
    """The balancing method and its options resolve."""
    if balancer is not None:
        from ..balancing import build_balancer
        try:
            build_balancer(balancer, max(tasks, 2))
        except TaskshareError as exc:
            raise ConfigError(f"config.multitask.balancer: {exc}") from None


def check_adapt(config: Any) -> None:
    """A domain-adaptation experiment: the task, each method with its options, and the model."""
    from ..adapt.train import build_method
    from ..tasks import Task
    from .track import check_spec
    check_spec(config.track)
    allowed = {"name", "kind", "num_classes", "num_outputs"}
    unknown = [k for k in config.task if k not in allowed]
    if unknown:
        raise ConfigError(f"config.task: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(allowed))}")
    Task(config.task.get("name", "label"), config.task.get("kind", "multiclass"), config.task.get("num_classes"),
         config.task.get("num_outputs"))
    stray = [m for m in config.adapt.options if m not in config.adapt.methods]
    if stray:
        raise ConfigError(f"config.adapt.options has {stray[0]!r}, which is not in adapt.methods "
                          f"({', '.join(config.adapt.methods)})")
    for method in config.adapt.methods:
        if method == "shot":            # fit_source_free's hyperparameters
            bad = [k for k in config.adapt.options.get(method, {}) if k not in ("pseudo_weight", "min_source_accuracy")]
            if bad:
                raise ConfigError(f"config.adapt.options.shot: unknown key {bad[0]!r}; allowed keys: pseudo_weight, "
                                  f"min_source_accuracy")
            w = config.adapt.options.get(method, {}).get("pseudo_weight", 0.3)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
                raise ConfigError(f"config.adapt.options.shot.pseudo_weight = {w!r}; expected a number >= 0")
            a = config.adapt.options.get(method, {}).get("min_source_accuracy")   # None: max(0.5, 1.5x chance)
            if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 1):
                raise ConfigError(f"config.adapt.options.shot.min_source_accuracy = {a!r}; expected a fraction in "
                                  f"[0, 1] (or null for the default, max(0.5, 1.5x chance))")
        elif method != "source_only":
            try:
                build_method({"name": method, **config.adapt.options.get(method, {})})
            except TaskshareError as exc:
                raise ConfigError(f"config.adapt.options.{method}: {exc}") from None
    config.model.check()
