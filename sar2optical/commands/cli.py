"""What the entry scripts share: absl setup and one clear line for user errors."""

import logging as std_logging
import os
import sys
from collections.abc import Callable

import jax
from absl import app, flags, logging

from sar2optical.core import storage
from sar2optical.core.errors import Sar2OpticalError, StoppedBySignal


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO chatter of Orbax and Grain (a dozen lines per checkpoint); keeps their warnings and errors,
  but for Orbax's traceback of a write that failed on a full disk: DiskFull says that in one line."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    noisy = "/orbax/" in record.pathname or "/grain/" in record.pathname
    if noisy and record.exc_info and storage.caused_by_full_disk(record.exc_info[1]):
      return False
    return record.levelno >= std_logging.WARNING or not noisy


def use_compilation_cache(workdir: str) -> None:
  """Keeps compiled programs in WORKDIR/jax_cache, so that a resumed run loads its step instead of compiling it,
  unless the user chose a cache (--jax_compilation_cache_dir or JAX_COMPILATION_CACHE_DIR): theirs wins.
  Global JAX settings are the commands' to make, never the library's."""
  given = "jax_compilation_cache_dir" in flags.FLAGS and flags.FLAGS["jax_compilation_cache_dir"].present
  if given or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return
  path = storage.as_path(workdir, "--workdir")
  folder = os.fspath(path if storage.is_remote(path) else path.resolve())
  jax.config.update("jax_compilation_cache_dir", f"{folder}/jax_cache")
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)`: a Sar2OpticalError becomes `error: <message>` and exit status 2; a stop by a signal,
  its message and status.

  JAX's own settings are flags of every command, as in other JAX programs (--jax_platforms=cpu,
  --jax_debug_nans, --jax_compilation_cache_dir=…; `--helpfull` lists them).
  """
  if "jax_platforms" not in flags.FLAGS:  # defined once per process
    jax.config.config_with_absl()
  def guarded(argv: list[str]) -> None:
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      main(argv)
    except Sar2OpticalError as error:
      logging.flush()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(2)
    except StoppedBySignal as stop:
      logging.flush()
      print(stop, file=sys.stderr)
      sys.exit(stop.exit_status)
  app.run(guarded)
