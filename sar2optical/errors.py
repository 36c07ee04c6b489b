"""User-facing errors: each names the file, field or path at fault.

Entry scripts catch `Sar2OpticalError`, print its message and exit non-zero, so a user sees
one clear line instead of a traceback.
"""


class Sar2OpticalError(Exception):
  """Base class of every error caused by user input (config, data, paths)."""


class ConfigError(Sar2OpticalError, ValueError):
  """A config field has a bad value; the message starts with the field's name."""


class DataError(Sar2OpticalError, ValueError):
  """A data root, split file or image is missing, corrupt or of the wrong shape."""


class CheckpointError(Sar2OpticalError, FileNotFoundError):
  """A workdir or checkpoint is missing or does not fit the config."""
