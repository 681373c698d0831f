"""A balancing method from its name, a {name: ..., hyperparameter: ...} mapping, or an instance."""
from __future__ import annotations

from typing import Any

from .base import BALANCERS, Balancer


def build_balancer(spec: Any, num_tasks: int) -> Balancer:
    """A method from a name, a {name: ..., hyperparameter: ...} mapping, or an instance (per-task
    state sized for `num_tasks`, given to the methods that keep some)."""
    return BALANCERS.build(spec, num_tasks=num_tasks)
