"""Output folders: made before any work starts, with an error naming the folder when that fails; files
written whole or not at all."""

import contextlib
import os
import pathlib
import tempfile
from collections.abc import Iterator

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


@contextlib.contextmanager
def written_whole(path: str | pathlib.Path) -> Iterator[pathlib.Path]:
  """Yields a temporary name beside `path` to write; renames it to `path` once the block ends without error.

  Invariant: `path` is either left as it was or replaced by a complete file with the permissions of a
  new file there (whatever the writer set: safetensors makes its files private); the temporary file
  never stays. An OSError becomes a DataError naming `path`.
  """
  path = pathlib.Path(path)
  temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    temporary.touch()
    mode = temporary.stat().st_mode
    yield temporary
    temporary.chmod(mode)
    os.replace(temporary, path)
  except OSError as error:
    raise DataError(f"{path} cannot be written: {error.strerror or error}") from None
  finally:
    temporary.unlink(missing_ok=True)


def write_whole(path: str | pathlib.Path, data: bytes | str) -> None:
  """Writes `data` (text as UTF-8) to `path` through `written_whole`: a complete file or none."""
  with written_whole(path) as temporary:
    temporary.write_bytes(data.encode() if isinstance(data, str) else data)


def writable_file(path: str | pathlib.Path, what: str) -> pathlib.Path:
  """`path` resolved, its folder made and checked writable (`writable_directory`); the file is not touched."""
  path = pathlib.Path(path)
  return writable_directory(path.parent, f"{what} folder") / path.name
