"""One exception type for bad input, so callers can catch taskshare's complaints apart from bugs."""


class TaskshareError(ValueError):
    """A value the user gave is wrong; the message names the value and what was expected."""


class ConfigError(TaskshareError):
    """A configuration file or dictionary has an unknown key or a value of the wrong type."""


class NonFiniteError(TaskshareError):
    """NaN or Inf reached an input, a loss or a gradient."""
