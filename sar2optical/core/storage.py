"""Output folders: made before any work starts, with an error naming the folder when that fails; files
written whole or not at all."""

import contextlib
import errno
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator

from sar2optical.core.errors import ConfigError, DataError, DiskFull

# How TensorStore (Orbax's writer) reports ENOSPC: a ValueError whose text carries the OS error.
_TENSORSTORE_ENOSPC = f"[os_error_code='{errno.ENOSPC}']"
# gs://, s3://, https://, …: a URL scheme, which pathlib would quietly fold into a local folder named "gs:".
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def local_path(path: str | os.PathLike[str], what: str) -> pathlib.Path:
  """`path` with `~` expanded; ConfigError naming `what` when it is a URL (gs://bucket/…), which this version
  cannot read or write, rather than a local folder named after the URL's scheme."""
  found = _URL.match(os.fspath(path))
  if found:
    raise ConfigError(f"{what} {os.fspath(path)}: {found.group(1)}:// paths are not supported; use a local path, or "
                      "a bucket mounted as a folder (Cloud Storage FUSE, gcsfuse; docs/multihost.md)")
  return pathlib.Path(path).expanduser()


def writable_directory(path: str | pathlib.Path, what: str) -> pathlib.Path:
  """`path` resolved, created with its parents and checked writable; DataError naming `what` and it otherwise
  (ConfigError for a URL: `local_path`)."""
  path = local_path(path, what).resolve()
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as error:
    raise DataError(f"{what} {path} cannot be created or written: {error.strerror or error}") from None
  return path


def temporary_name(path: pathlib.Path) -> pathlib.Path:
  """The hidden name beside `path` under which it is written before one rename makes it whole: the only
  naming of partial files, so that every reader that skips them skips them all."""
  return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def written_whole(path: str | pathlib.Path) -> Iterator[pathlib.Path]:
  """Yields a temporary name beside `path` to write; renames it to `path` once the block ends without error.

  Invariant: `path` is either left as it was or replaced by a complete file with the permissions of a
  new file there (whatever the writer set: safetensors makes its files private); the temporary file
  never stays. An OSError becomes a DataError naming `path`.
  """
  path = pathlib.Path(path)
  temporary = temporary_name(path)
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


def megabytes(size: int) -> str:
  return f"{size / 2**20:.1f} MB"


def caused_by_full_disk(error: BaseException | None) -> bool:
  """Whether ENOSPC is `error` or in its chain of causes: an OSError of ours, a TensorStore error of Orbax's,
  or an error whose message carries the system's text for it (GDAL's, through rasterio)."""
  while error is not None:
    if ((isinstance(error, OSError) and error.errno == errno.ENOSPC) or _TENSORSTORE_ENOSPC in str(error)
        or os.strerror(errno.ENOSPC) in str(error)):
      return True
    error = error.__cause__ or error.__context__
  return False


@contextlib.contextmanager
def disk_full_reported(folder: pathlib.Path, needed: Callable[[], int | None], remedy: str) -> Iterator[None]:
  """Turns an error caused by a full disk (`caused_by_full_disk`) in the block into one DiskFull line naming
  `folder`, its free space, the space `needed()` (bytes, None if unknown) and `remedy`."""
  try:
    yield
  except Exception as error:  # whatever wraps the ENOSPC: Orbax's ValueError, an ExitStack's chain
    if not caused_by_full_disk(error):
      raise
    size = needed()
    need = f"about {megabytes(size)} needed" if size else "more needed"
    raise DiskFull(f"the disk of {folder} is full ({megabytes(shutil.disk_usage(folder).free)} free, {need}): "
                   f"{remedy}") from None
