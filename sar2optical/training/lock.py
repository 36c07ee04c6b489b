"""One training run per workdir: `WORKDIR/train.lock`, held with flock(2) by the run's process 0.

The file names its holder (host, pid, start time) for the message a second run prints. The
kernel releases a flock when the process ends, however it ends (SIGKILL, a crash, the machine's
power), so a lock left by a killed run never blocks: the next run takes it over and logs whose it
was. A run that ends normally empties the file. The file itself is never deleted: two runs could
otherwise lock two different files of the same name. Readers (eval.py, predict.py) take no lock:
they see committed checkpoints only.

A workdir in a bucket (gs://…) has no flock: its lock is a lease, the object `WORKDIR/train.lock`
created only if absent (a generation precondition, so of two runs that start together one wins) and
renewed by the holder every LEASE_SECONDS / 4 under the precondition of its own last generation. A run
finds the lease free when there is none, when it was not renewed for LEASE_SECONDS (its holder was killed
with its VM: a preempted TPU's job resumes at most that long after), or when it names a process of this
host that no longer exists (killed on this VM: taken over at once). A run that ends normally deletes it.
A run whose lease was taken over (it could not renew it for LEASE_SECONDS: a network outage) learns so at its
next renewal and stops at its next step without saving (`Tenure.check`): the workdir is the other run's.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import IO, Any

from absl import logging

from sar2optical.core import storage
from sar2optical.core.errors import WorkdirInUse

LOCK_FILE = "train.lock"
LEASE_SECONDS = 120.0  # a lease not renewed for this long is free (its holder renews 4 times as often)


class Tenure:
  """What `held` yields: whether this run still holds its workdir (a lease can be taken over; a flock cannot)."""

  def __init__(self) -> None:
    self._lost: str | None = None

  @property
  def held(self) -> bool:
    return self._lost is None

  def lose(self, reason: str) -> None:
    self._lost = reason

  def check(self, step: int) -> None:
    """WorkdirInUse, naming who took the workdir over, once this run's lease was lost; before `step` is saved."""
    if self._lost:
      raise WorkdirInUse(f"{self._lost}: this run stopped after step {step} without saving it (the workdir is the "
                         "other run's now)")


@contextlib.contextmanager
def held(workdir: storage.Path) -> Iterator[Tenure]:
  """Holds `workdir`'s lock for the block; WorkdirInUse naming the holder when another process holds it."""
  if storage.is_remote(workdir):
    with _lease(workdir) as tenure:
      yield tenure
    return
  path = workdir / LOCK_FILE
  with open(path, "a+", encoding="utf-8") as file:
    try:
      fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
        raise
      raise _in_use(workdir, _holder(file), os.fspath(path)) from None
    if storage.on_cloud_storage_fuse(workdir):
      logging.warning("%s is on a bucket mounted with Cloud Storage FUSE: its lock holds on this VM only, a run on "
                      "another VM is not refused (--workdir=gs://… holds a lease that every VM sees)", workdir)
    previous = _holder(file)
    if previous:
      logging.info("Took over the lock of %s, which ended without releasing it (killed?): %s",
                   _describe(previous), path)
    _write(file, _this_process())
    try:
      yield Tenure()
    finally:
      _write(file, None)  # the kernel drops the flock when the file closes


def _this_process() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def _in_use(workdir: storage.Path, holder: dict | None, where: str) -> WorkdirInUse:
  return WorkdirInUse(f"the workdir {workdir} is in use by {_describe(holder)} ({where}); wait for that run to end, "
                      "stop it, or train in another --workdir")


@contextlib.contextmanager
def _lease(workdir: storage.Path) -> Iterator[Tenure]:
  """Holds the lease object WORKDIR/train.lock of a workdir in a bucket for the block (see the module docstring)."""
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top (the gcs extra)
  from google.cloud import storage as gcs  # pylint: disable=g-import-not-at-top
  bucket, _, name = os.fspath(workdir / LOCK_FILE).removeprefix("gs://").partition("/")
  blob = gcs.Client().bucket(bucket).blob(name)
  me = _this_process()
  try:
    blob.reload()
    previous = json.loads(blob.download_as_bytes(if_generation_match=blob.generation) or b"null")
    age = (datetime.datetime.now(datetime.UTC) - blob.updated).total_seconds()
    if not (age > LEASE_SECONDS or _ended_on_this_host(previous)):
      raise _in_use(workdir, previous, f"its lease {workdir / LOCK_FILE} was renewed {age:.0f} s ago and "
                                       f"is free after {LEASE_SECONDS:.0f} s without renewal")
    expected = blob.generation
    logging.info("Took over the lease of %s, which ended without releasing it (killed?): %s",
                 _describe(previous), workdir / LOCK_FILE)
  except exceptions.NotFound:
    expected = 0  # create only if absent
  try:
    blob.upload_from_string(json.dumps(me) + "\n", if_generation_match=expected)
  except exceptions.PreconditionFailed:
    raise _in_use(workdir, None, f"its lease {workdir / LOCK_FILE} was taken a moment ago") from None
  stop, tenure = threading.Event(), Tenure()
  renewer = threading.Thread(target=_renew, args=(blob, me, stop, tenure), name="train.lock lease", daemon=True)
  renewer.start()
  try:
    yield tenure
  finally:
    stop.set()
    renewer.join()
    if tenure.held:  # a lease taken over is the other run's
      with contextlib.suppress(exceptions.GoogleAPIError):
        blob.delete(if_generation_match=blob.generation)


def _renew(blob: Any, me: dict, stop: threading.Event, tenure: Tenure) -> None:
  """Rewrites the lease every LEASE_SECONDS / 4 until `stop`, each time only if it is still the one written last;
  once it is not, `tenure` loses the workdir to whoever wrote it."""
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  while not stop.wait(LEASE_SECONDS / 4):
    try:
      blob.upload_from_string(json.dumps(me) + "\n", if_generation_match=blob.generation)
    except exceptions.PreconditionFailed:
      tenure.lose(f"the lease gs://{blob.bucket.name}/{blob.name} was taken over by {_describe(_current_holder(blob))}")
      return
    except exceptions.GoogleAPIError as error:  # a transient failure: the next renewal tries again
      logging.warning("Could not renew the lease %s: %s", blob.name, storage.one_line(error))


def _current_holder(blob: Any) -> dict | None:
  """The holder the lease object names now; None when it cannot be read."""
  try:
    holder = json.loads(blob.bucket.blob(blob.name).download_as_bytes())
  except Exception:  # gone, unreadable, or the network: the message then names "another training run"
    return None
  return holder if isinstance(holder, dict) else None


def _ended_on_this_host(holder: dict | None) -> bool:
  """Whether `holder` names a process of this host that no longer runs (killed: its lease is stale at once)."""
  if not isinstance(holder, dict) or holder.get("host") != socket.gethostname():
    return False
  if not isinstance(holder.get("pid"), int):
    return False
  try:
    os.kill(holder["pid"], 0)
  except ProcessLookupError:
    return True
  except PermissionError:  # alive, another user's
    pass
  return False


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
