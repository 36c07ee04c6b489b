"""Output folders: made before any work starts, with an error naming the folder when that fails."""

import pathlib
import tempfile

from sar2optical.errors import DataError


def writable_directory(path: str | pathlib.Path, what: str) -> pathlib.Path:
  """`path` resolved, created with its parents and checked writable; DataError naming `what` and it otherwise."""
  path = pathlib.Path(path).expanduser().resolve()
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as error:
    raise DataError(f"{what} {path} cannot be created or written: {error.strerror or error}") from None
  return path
