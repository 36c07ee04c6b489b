"""One training run per workdir: `WORKDIR/train.lock`, held with flock(2) by the run's process 0.

The file names its holder (host, pid, start time) for the message a second run prints. The
kernel releases a flock when the process ends, however it ends (SIGKILL, a crash, the machine's
power), so a lock left by a killed run never blocks: the next run takes it over and logs whose it
was. A run that ends normally empties the file. The file itself is never deleted: two runs could
otherwise lock two different files of the same name. Readers (eval.py, predict.py) take no lock:
they see committed checkpoints only.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
from collections.abc import Iterator
from typing import IO

from absl import logging

from sar2optical.core.errors import WorkdirInUse

LOCK_FILE = "train.lock"


@contextlib.contextmanager
def held(workdir: pathlib.Path) -> Iterator[None]:
  """Holds `workdir`'s lock for the block; WorkdirInUse naming the holder when another process holds it."""
  path = workdir / LOCK_FILE
  with open(path, "a+", encoding="utf-8") as file:
    try:
      fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
        raise
      raise WorkdirInUse(f"the workdir {workdir} is in use by {_describe(_holder(file))} ({path}); wait for that "
                         "run to end, stop it, or train in another --workdir") from None
    previous = _holder(file)
    if previous:
      logging.info("Took over the lock of %s, which ended without releasing it (killed?): %s",
                   _describe(previous), path)
    _write(file, {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    try:
      yield
    finally:
      _write(file, None)  # the kernel drops the flock when the file closes


def _holder(file: IO[str]) -> dict | None:
  """The holder recorded in the lock file; None when it is empty or unreadable (a holder is still writing it)."""
  file.seek(0)
  try:
    holder = json.loads(file.read() or "null")
  except ValueError:
    return None
  return holder if isinstance(holder, dict) else None


def _describe(holder: dict | None) -> str:
  if holder is None:
    return "another training run"
  return f"a training run on host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"


def _write(file: IO[str], holder: dict | None) -> None:
  file.seek(0)
  file.truncate()
  if holder is not None:
    file.write(json.dumps(holder) + "\n")
  file.flush()
