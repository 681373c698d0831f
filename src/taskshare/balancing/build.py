"""A balancing method from its name, a {name: ..., hyperparameter: ...} mapping, or an instance."""
from __future__ import annotations

from typing import Any

from ..errors import TaskshareError
from .base import BALANCERS, Balancer


def build_balancer(spec: Any, num_tasks: int) -> Balancer:
    """A method from a name, a {name: ..., hyperparameter: ...} mapping, or an instance (per-task
    state sized for `num_tasks`)."""
    if isinstance(spec, Balancer):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise TaskshareError(f"a balancing method is a name or a mapping with 'name'; got {spec!r}")
    from ..config import from_dict
    cls = BALANCERS.get(spec["name"])
    args = {k: v for k, v in spec.items() if k != "name"}
    if "num_tasks" in {f for f in getattr(cls, "__dataclass_fields__", {})} and "num_tasks" not in args:
        args["num_tasks"] = num_tasks
    return from_dict(cls, args, f"balancing {spec['name']}")
