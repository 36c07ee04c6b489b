"""Paths, local or in a bucket, and output folders: made before any work starts, with an error naming the folder
when that fails; files written whole or not at all.

A local path is a `pathlib.Path`. A `gs://` path is an `etils.epath.Path`: the path layer Orbax, grain, TFDS and
JAX's compilation cache use, so that one `gs://…` string means the same object to all of them; it reaches
Cloud Storage through gcsfs (the `gcs` extra). Both take `/`, `.name`, `.parent`, `read_text`, `exists`, `iterdir`.
What an object store cannot do the local way (rename, append, flock) is done here and in the training lock.
"""

import contextlib
import errno
import importlib.util
import os
import pathlib
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import TypeAlias

from etils import epath

from sar2optical.core.errors import ConfigError, DataError, DiskFull

#: A local path or a path in a bucket (gs://…).
Path: TypeAlias = pathlib.Path | epath.Path

# How TensorStore (Orbax's writer) reports ENOSPC: a ValueError whose text carries the OS error.
_TENSORSTORE_ENOSPC = f"[os_error_code='{errno.ENOSPC}']"
# gs://, s3://, https://, …: a URL scheme, which pathlib would quietly fold into a local folder named "gs:".
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_remote(path: str | os.PathLike[str]) -> bool:
  """Whether `path` is a URL (gs://bucket/…) rather than a local path."""
  return bool(_URL.match(os.fspath(path)))


def as_path(path: str | os.PathLike[str], what: str) -> Path:
  """`path` as a local `pathlib.Path` (`~` expanded, made absolute) or, for gs://…, an `epath.Path`.

  ConfigError naming `what` for another scheme (rather than a local folder named "s3:") or when gs:// paths
  need the `gcs` extra that is not installed.
  """
  text = os.fspath(path)
  found = _URL.match(text)
  if not found:
    return pathlib.Path(text).expanduser().absolute()
  if found.group(1) != "gs":
    raise ConfigError(f"{what} {text}: {found.group(1)}:// paths are not supported; use gs://, a local path, or a "
                      "bucket mounted as a folder")
  if importlib.util.find_spec("gcsfs") is None:
    raise ConfigError(f"{what} {text}: gs:// paths need the gcs extra: pip install 'sar2optical[gcs]'")
  _use_emulator_if_set()
  return epath.Path(text)


def resolved(path: Path) -> Path:
  """A local `path` with its symlinks resolved; a bucket's path as it is (it has no links)."""
  return path if is_remote(path) else pathlib.Path(path).resolve()


def folder_entries(folder: Path) -> list[tuple[str, bool]]:
  """(name, is a folder) of each entry of `folder`, sorted by name: one listing request for a bucket's folder
  (asking each entry whether it is a folder would cost a request per file)."""
  if not is_remote(folder):
    with os.scandir(folder) as entries:
      return sorted((entry.name, entry.is_dir()) for entry in entries)
  import fsspec  # pylint: disable=g-import-not-at-top (gcsfs's filesystem; present with the gcs extra)
  filesystem, prefix = fsspec.core.url_to_fs(os.fspath(folder))
  found = filesystem.ls(prefix, detail=True)
  return sorted((entry["name"].rstrip("/").rpartition("/")[2], entry["type"] == "directory") for entry in found
                if entry["name"].rstrip("/") != prefix.rstrip("/"))


def object_size(url: str) -> int:
  """The size in bytes of the object at the gs:// `url` (the gcs extra); the client's errors as they come."""
  import fsspec  # pylint: disable=g-import-not-at-top (gcsfs's filesystem; present with the gcs extra)
  as_path(url, "the object")  # the extra's check, and the emulator's setting
  filesystem, name = fsspec.core.url_to_fs(url)
  return int(filesystem.size(name))


def local_path(path: str | os.PathLike[str], what: str) -> pathlib.Path:
  """`path` with `~` expanded; ConfigError naming `what` when it is a URL: for the paths that must be local."""
  found = _URL.match(os.fspath(path))
  if found:
    raise ConfigError(f"{what} {os.fspath(path)}: must be a local path here (gs:// works for workdirs and models); "
                      "use a local path, or a bucket mounted as a folder")
  return pathlib.Path(path).expanduser()


def on_cloud_storage_fuse(path: Path) -> bool:
  """Whether the local `path` lies on a bucket mounted with Cloud Storage FUSE (gcsfuse): no rename of a folder
  in one step, no lock seen by other VMs."""
  if is_remote(path):
    return False
  try:
    mounts = [line.split()[1:3] for line in pathlib.Path("/proc/mounts").read_text().splitlines()]
  except OSError:  # not Linux
    return False
  target = os.fspath(pathlib.Path(path).resolve())
  found = [(len(point), kind) for point, kind in mounts
           if target == point or target.startswith(point.rstrip("/") + "/")]
  return bool(found) and max(found)[1] == "fuse.gcsfuse"


def _use_emulator_if_set() -> None:
  """With STORAGE_EMULATOR_HOST (a local GCS-compatible server, for tests), skips gcsfs's probe of the bucket's
  type over gRPC, which an emulator does not serve; set before gcsfs is first imported."""
  if os.environ.get("STORAGE_EMULATOR_HOST"):
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def writable_directory(path: str | os.PathLike[str], what: str) -> Path:
  """`path` resolved, created with its parents and checked writable; DataError naming `what` and it otherwise
  (ConfigError for an unsupported URL: `as_path`). A bucket's folder is checked by writing and deleting an object."""
  path = resolved(as_path(path, what))
  if is_remote(path):
    return _writable_bucket_folder(path, what)
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as error:
    raise DataError(f"{what} {path} cannot be created or written: {error.strerror or error}") from None
  return path


def _writable_bucket_folder(path: epath.Path, what: str) -> epath.Path:
  probe = path / f".write-check.{socket.gethostname()}.{os.getpid()}"
  try:
    probe.write_bytes(b"")
    probe.unlink()
  except Exception as error:  # gcsfs and google-auth raise OSError, HttpError, DefaultCredentialsError, ...
    raise DataError(f"{what} {path} cannot be written: {one_line(error)}") from None
  return path


def one_line(error: BaseException) -> str:
  """`error`'s type and the first line of its message: a client library's error without its response body."""
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def temporary_name(path: pathlib.Path) -> pathlib.Path:
  """The hidden name beside `path` under which it is written before one rename makes it whole: the only
  naming of partial files, so that every reader that skips them skips them all."""
  return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def written_whole(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
  """Yields a temporary name beside `path` to write; renames it to `path` once the block ends without error.

  Invariant: `path` is either left as it was or replaced by a complete file with the permissions of a
  new file there (whatever the writer set: safetensors makes its files private); the temporary file
  never stays. An OSError becomes a DataError naming `path`. For a gs:// path the temporary file is local
  and is uploaded in one request: Cloud Storage shows an object only once its upload is complete.
  """
  if is_remote(path):
    with _uploaded(as_path(path, "the output")) as temporary:
      yield temporary
    return
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


@contextlib.contextmanager
def _uploaded(path: epath.Path) -> Iterator[pathlib.Path]:
  with tempfile.TemporaryDirectory(prefix="sar2optical-upload-") as folder:
    temporary = pathlib.Path(folder) / path.name
    yield temporary
    upload(temporary, path)


def staging_name(path: Path) -> pathlib.Path:
  """Where a file for `path` is written before `publish` puts it there whole: `temporary_name(path)` beside a local
  path; a fresh local temporary folder for a path in a bucket."""
  if is_remote(path):
    return pathlib.Path(tempfile.mkdtemp(prefix="sar2optical-upload-")) / path.name
  return temporary_name(pathlib.Path(path))


def publish(staged: pathlib.Path, path: Path) -> None:
  """Moves the complete file `staged` (from `staging_name(path)`) to `path` in one step: a rename, or one upload."""
  if is_remote(path):
    try:
      upload(staged, path)
    finally:
      discard(staged, path)
  else:
    os.replace(staged, path)


def discard(staged: pathlib.Path, path: Path) -> None:
  """Removes the file `staged` for `path` (`staging_name`), and for a bucket's path its temporary folder."""
  if is_remote(path):
    shutil.rmtree(staged.parent, ignore_errors=True)
  else:
    staged.unlink(missing_ok=True)


def upload(local: pathlib.Path, path: epath.Path) -> None:
  """Copies `local` to the object `path` in one upload (Cloud Storage shows the object once it is complete);
  DataError naming `path` when that fails."""
  try:
    import fsspec  # pylint: disable=g-import-not-at-top (gcsfs's filesystem; present with the gcs extra)
    filesystem, remote = fsspec.core.url_to_fs(os.fspath(path))
    filesystem.put_file(os.fspath(local), remote)
  except Exception as error:  # network, permission and quota errors of the client library
    raise DataError(f"{path} cannot be written: {one_line(error)}") from None


def write_whole(path: str | os.PathLike[str], data: bytes | str) -> None:
  """Writes `data` (text as UTF-8) to `path` through `written_whole`: a complete file or none."""
  with written_whole(path) as temporary:
    temporary.write_bytes(data.encode() if isinstance(data, str) else data)


def writable_file(path: str | os.PathLike[str], what: str) -> Path:
  """The local `path` resolved, its folder made and checked writable (`writable_directory`); the file is not
  touched."""
  path = local_path(path, what)
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
def disk_full_reported(folder: Path, needed: Callable[[], int | None], remedy: str) -> Iterator[None]:
  """Turns an error caused by a full disk (`caused_by_full_disk`) in the block into one DiskFull line naming
  `folder`, its free space, the space `needed()` (bytes, None if unknown) and `remedy`."""
  try:
    yield
  except Exception as error:  # whatever wraps the ENOSPC: Orbax's ValueError, an ExitStack's chain
    if not caused_by_full_disk(error):
      raise
    size = needed()
    need = f"about {megabytes(size)} needed" if size else "more needed"
    local = pathlib.Path(tempfile.gettempdir()) if is_remote(folder) else folder  # a bucket's uploads are staged there
    raise DiskFull(f"the disk of {local} is full ({megabytes(shutil.disk_usage(local).free)} free, {need}): "
                   f"{remedy}") from None
