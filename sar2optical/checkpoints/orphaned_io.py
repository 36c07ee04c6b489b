"""Silences the TensorStore reads and writes that a failed restore or save leaves behind, and only those."""

import logging
import sys

from sar2optical.core import storage

TENSORSTORE_SPEC = "[tensorstore_spec="  # in the text of every TensorStore error


def silence() -> None:
  """Silences the reads and writes a failed restore or save leaves behind, and only those.

  When one read of a damaged checkpoint fails, or one write on a full disk, Orbax closes its event
  loop while TensorStore still completes the other reads or writes; each completion then reports an
  unraisable "Event loop is closed" RuntimeError, and each other read or write that failed too leaves a
  future whose TensorStore error nobody retrieves, which asyncio logs when the future is collected (maybe
  after the one clear error line, at exit). Those are dropped, from the first Checkpoints on; any other
  unraisable error goes to the previous hook, any other asyncio record is logged.
  """
  previous = sys.unraisablehook
  if getattr(previous, "drops_orphaned_reads", False):
    return

  def hook(unraisable) -> None:
    value = unraisable.exc_value
    if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
      previous(unraisable)

  hook.drops_orphaned_reads = True
  sys.unraisablehook = hook
  logging.getLogger("asyncio").addFilter(drop_orphaned_tensorstore_errors)


def drop_orphaned_tensorstore_errors(record: logging.LogRecord) -> bool:
  """False for asyncio's "exception was never retrieved" of an orphaned TensorStore read (its error names the
  spec) or write on a full disk (its error carries ENOSPC, and DiskFull has said so in one line)."""
  error = record.exc_info[1] if record.exc_info else None
  orphaned = TENSORSTORE_SPEC in str(error) or storage.caused_by_full_disk(error)
  return not ("exception was never retrieved" in record.getMessage() and orphaned)
