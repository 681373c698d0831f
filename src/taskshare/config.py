"""Dataclasses from YAML/dicts: unknown keys and wrong types are refused with a message that names
the key, the value and what was allowed."""
from __future__ import annotations

import dataclasses
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any, Union

import numpy as np
import yaml

from .errors import ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _union(value: Any, options: tuple, where: str) -> Any:
    """The first of the union's types the value converts to."""
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            return _convert(value, option, where)
        except ConfigError:
            continue            # the next option may fit; the message names them all
    raise ConfigError(f"{where} = {value!r}; expected {' or '.join(_type_name(o) for o in options)}")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _union(value, typing.get_args(tp), where)
    if hasattr(tp, "from_config"):      # a spec with its own YAML form (e.g. ModelSpec's families)
        return tp.from_config(value, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r}; expected a mapping of {tp.__name__} settings")
        return from_dict(tp, value, where)
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r}; expected a list")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r}; expected a mapping")
        return dict(value)
    return _scalar(value, tp, where)


def _scalar(value: Any, tp: Any, where: str) -> Any:
    """A number, flag or string of the declared type (other types pass as they are)."""
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):  # YAML reads 1e-3 as a string
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where} = {value!r}; expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}; expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}; expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}; expected a string")
        return value
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Build dataclass `cls` from `data`, checking every key and value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ConfigError as exc:          # a key's own check: its whole path from the top, one spelling
        if exc.key is None:
            raise
        raise ConfigError(f"{where}.{exc.key}{exc.detail}") from None


def to_dict(obj: Any) -> Any:
    if hasattr(obj, "to_config"):       # written back in the form it was read
        return obj.to_config()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    return read_mapping(path, yaml.safe_load, yaml.YAMLError, "YAML", ConfigError)


def read_mapping(path: Path, parse, parse_error, kind: str, error=ConfigError) -> dict[str, Any]:
    """A file holding one mapping (YAML config, JSON results): parse errors and other top levels named."""
    try:
        data = parse(path.read_text())
    except parse_error as exc:
        raise error(f"{path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# Field checks at construction (typed): a dataclass built in Python is checked as one read from YAML.
def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any or isinstance(tp, typing.TypeVar):
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0] if args else Any) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, (bool, np.bool_))
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if tp is str:              # a path object where a path string is declared works the same way
        return isinstance(value, (str, os.PathLike))
    return True


def _type_text(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(o) for o in typing.get_args(tp))
    if origin in (list, tuple) or tp in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def check_fields(obj: Any, owner: str | None = None) -> None:
    """Every field of a config dataclass has its declared type (an int where an int is declared: no
    "3" for epochs), so a wrong value is named at construction, not deep inside training."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in hints and not _matches(value, hints[f.name]):
            raise ConfigError.at(f.name, f" = {value!r}; expected {_type_text(hints[f.name])}", owner)


def typed(owner: str | None = None):
    """Class decorator (placed under @dataclass): check_fields before the class's own __post_init__."""
    def wrap(cls):
        own = cls.__dict__.get("__post_init__")

        def __post_init__(self) -> None:
            check_fields(self, owner)
            if own is not None:
                own(self)

        cls.__post_init__ = __post_init__
        return cls
    return wrap
