"""Name -> entry registries filled by a decorator; CLI and YAML choices come from them, and
`build(spec)` is the one way a spec (a name, a {name: ..., **kwargs} mapping, or an instance)
becomes an object, whatever the registry holds (strategies, balancers, adaptation methods,
sharing modes, backbones, experiment modes)."""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any, Callable, Generic, TypeVar

from .errors import ConfigError, TaskshareError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries that refuses duplicates and explains unknown names. `base`: the type
    whose instances `build` passes through as they are (a method the caller built itself)."""

    def __init__(self, kind: str, base: type | None = None):
        self.kind = kind
        self.base = base
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):       # TypeError: an unhashable "name" (a list from YAML)
            raise TaskshareError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(sorted(self._entries))}"
            ) from None

    def build(self, spec: Any, **context: Any) -> Any:
        """The entry `spec` names, built with the spec's own keyword arguments. `context` (what the
        caller knows, e.g. num_tasks) reaches only entries that accept it, and the spec's keys win
        over it. A key the entry does not take is named with the ones it does."""
        if self.base is not None and isinstance(spec, self.base):
            return spec
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise TaskshareError(f"a {self.kind} is a name or a mapping with 'name'; got {spec!r}")
        name = spec["name"]
        entry = self.get(name)
        own = {k: v for k, v in spec.items() if k != "name"}
        accepted = _parameters(entry)
        kwargs = {**{k: v for k, v in context.items() if accepted is None or k in accepted}, **own}
        where = f"{self.kind} {name}"
        if dataclasses.is_dataclass(entry):     # typed fields: from_dict checks every value as YAML does
            from .config import from_dict
            return from_dict(entry, kwargs, where)
        bad = [k for k in own if accepted is not None and k not in accepted]
        if bad:     # what the caller supplies without a default (trunk_factory, ...) is no user option
            allowed = [p for p, optional in (accepted or {}).items() if optional or p not in context]
            raise ConfigError(f"{where}: unknown key {bad[0]!r}; allowed keys: {', '.join(allowed) or 'none'}")
        return entry(**kwargs)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _parameters(entry: Any) -> dict[str, bool] | None:
    """The keyword arguments an entry takes, each with whether it has a default; None when it takes
    any (**kwargs)."""
    if dataclasses.is_dataclass(entry):
        return {f.name: True for f in dataclasses.fields(entry) if f.init}
    params = inspect.signature(entry).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n: p.default is not p.empty for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
