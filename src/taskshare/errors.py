"""One exception type for bad input, so callers can catch taskshare's complaints apart from bugs."""
import importlib


class TaskshareError(ValueError):
    """A value the user gave is wrong; the message names the value and what was expected."""


class ConfigError(TaskshareError):
    """A configuration file or dictionary has an unknown key or a value of the wrong type."""

    def __init__(self, message: str, key: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.key, self.detail = key, detail

    @classmethod
    def at(cls, key: str, detail: str, owner: str | None = None) -> "ConfigError":
        """An error about one key of a config object. Reading YAML, config.from_dict puts the key's
        whole path from the file's top in front, so every message spells a key one way."""
        return cls(f"{owner + '.' if owner else ''}{key}{detail}", key, detail)


class NonFiniteError(TaskshareError):
    """NaN or Inf reached an input, a loss or a gradient."""


def require(module: str, extra: str, what: str | None = None):
    """Import an optional dependency, or stop with the extra that installs it. `what` opens the
    message ("image augmentation needs torchvision"); by default it names the package."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TaskshareError(f"{what or f'this needs the optional package {module!r}'}: "
                             f"pip install 'taskshare[{extra}]'") from exc
