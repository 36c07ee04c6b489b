"""User-facing errors: each names the file, field or path at fault.

Entry scripts catch `Sar2OpticalError`, print its message and exit non-zero, so a user sees
one clear line instead of a traceback.
"""


class Sar2OpticalError(Exception):
  """Base class of every error caused by user input (config, data, paths)."""


class ConfigError(Sar2OpticalError, ValueError):
  """A config field has a bad value; the message starts with the field's name."""


class DataError(Sar2OpticalError, ValueError):
  """A data root, split file or image is missing, corrupt or of the wrong shape; or an output folder is not writable."""


class CheckpointError(Sar2OpticalError, FileNotFoundError):
  """A workdir or checkpoint is missing or does not fit the config."""


class CheckpointDeleted(CheckpointError):
  """A checkpoint was deleted by its training run's retention (config.keep_checkpoints) while it was read."""


class MissingExtra(Sar2OpticalError, ImportError):
  """An optional dependency (a pip extra such as `[demo]`) is not installed; the message says how to install it."""


class WorkdirInUse(Sar2OpticalError):
  """Another training run holds the workdir's lock; the message names its host and pid."""


class DiskFull(Sar2OpticalError, OSError):
  """A disk filled up while writing; the message names the folder, its free space and the space needed."""


class TrainingDiverged(Sar2OpticalError):
  """A loss or gradient became NaN or Inf; the message names the first such step and the last good checkpoint."""


class StoppedBySignal(Exception):
  """SIGTERM or SIGINT stopped training after a checkpoint was written; not an error of the user's.

  Entry scripts print the message and exit with `exit_status` (128 + the signal's number, as a
  shell reports a process ended by it), so job schedulers see an unfinished run and restart it.
  """

  def __init__(self, message: str, exit_status: int):
    super().__init__(message)
    self.exit_status = exit_status
