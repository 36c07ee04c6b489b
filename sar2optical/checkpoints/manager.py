"""Orbax checkpoints in `WORKDIR/checkpoints/<step>/`: train state, data iterator, metadata and metrics.

The metadata item holds what a user needs to reproduce or use a result: the config, the pixel
mapping, the step and the versions of the packages that wrote it. The metrics item (Orbax's own)
holds the step's validation PSNR when validation ran; it is the one source of the best checkpoint.
Orbax writes each step to a temporary directory and renames it when complete, so a half-written
checkpoint is never taken as the latest, nor as the best; where a folder cannot be renamed in one step
(a gs:// workdir, a bucket mounted with Cloud Storage FUSE) a step counts once its `commit_success.txt`
is written, last. A step the retention policy drops is renamed
into `checkpoints/deleted/` at once and removed from there later, so a reader (eval.py during training)
sees a step whole or not at all, and a read that fails on a step no longer there is CheckpointDeleted.
"""

import json
import math
import os
import pathlib
import shutil
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from sar2optical.checkpoints import metadata as metadata_lib
from sar2optical.checkpoints import orphaned_io
from sar2optical.core import storage
from sar2optical.core.errors import CheckpointDeleted, CheckpointError

_DATA_ITEM = "data"  # Orbax writes each item to <step>/<item name>/
BEST_METRIC = "val_psnr"  # the checkpoint with the highest value is kept whatever `keep` says
# In the checkpoint folder, for people: {"step", "val_psnr"} of best(), rewritten once steps are committed.
BEST_FILE = "best.json"
DELETED_DIR = "deleted"  # steps the retention policy dropped, renamed here in one move, then removed
_OPEN_TRIES = 5  # listings of a workdir whose steps a training run is deleting meanwhile


def checkpoint_dir(workdir: str | pathlib.Path) -> storage.Path:
  return storage.resolved(storage.as_path(workdir, "the workdir")) / "checkpoints"


def is_step_dir(path: storage.Path) -> bool:
  """Whether `path` is a step directory WORKDIR/checkpoints/<step> (its workdir: `path.resolve().parents[1]`)."""
  return path.is_dir() and path.name.isdigit() and path.parent.name == "checkpoints"


def latest_bytes(workdir: str | pathlib.Path) -> int | None:
  """The size on disk of the latest committed checkpoint of `workdir` (about what a save needs); None if none."""
  directory = checkpoint_dir(workdir)
  if storage.is_remote(directory):  # a bucket is never full
    return None
  steps = [path for path in directory.iterdir() if is_step_dir(path)] if directory.is_dir() else []
  if not steps:
    return None
  latest = max(steps, key=lambda path: int(path.name))
  return sum(path.stat().st_size for path in latest.rglob("*") if path.is_file())


class Checkpoints:
  """The checkpoints of one workdir. Saves are asynchronous; `wait()` blocks until they are on disk."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int | None = None, create: bool = True):
    """`keep`: the last `keep` checkpoints stay, and so does the one saved with the best `val_psnr`."""
    self.directory = checkpoint_dir(workdir)
    if not create and not self.directory.is_dir():
      raise CheckpointError(f"no checkpoints in {workdir}: {self.directory} does not exist "
                            "(train first with: python train.py --config=... --workdir=...)")
    policy = None if keep is None else ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(keep),
        ocp.checkpoint_managers.BestN(get_metric_fn=_score, n=1, keep_checkpoints_without_metrics=False)])
    # `best_fn` makes Orbax write each step's metrics into the step (it ranks nothing: `policy` decides).
    # A killed save leaves a temporary folder that is never taken as a step; new managers delete it.
    commit_file = ocp.path.atomicity.CommitFileTemporaryPath if storage.on_cloud_storage_fuse(self.directory) else None
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=_score, create=create,
                                           enable_async_checkpointing=True, cleanup_tmp_directories=create,
                                           todelete_subdir=DELETED_DIR, temporary_path_class=commit_file)
    self._manager = _open_manager(self.directory, options)
    self._saved = False
    orphaned_io.silence()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator | None,
           metadata: dict[str, Any], val_psnr: float | None = None) -> None:
    """Saves `state` and `metadata`, and the iterator's position unless it is None (a converted model).

    With `val_psnr`, the checkpoint competes for best: it goes into the step's Orbax metrics, and the
    best one is never deleted. Orbax waits for the previous save before starting this one, so on return
    every step but this one is committed, and `checkpoints/best.json` is rewritten from them.
    """
    items = {"state": ocp.args.StandardSave(state), "metadata": ocp.args.JsonSave(metadata)}
    if data_iterator is not None:
      items[_DATA_ITEM] = grain.checkpoint.CheckpointSave(data_iterator)
    metrics = {} if val_psnr is None else {BEST_METRIC: float(val_psnr)}  # {}: ranks last, and Orbax does not warn
    self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics)
    self._saved = True
    self._record_best()
    self._remove_deleted()

  def best(self) -> dict[str, float] | None:
    """{"step", "val_psnr"} of the committed checkpoint with the highest validation PSNR; None if none has one.

    Read from the steps' Orbax metrics in their final folders: a save in flight, or killed, is not
    counted, nor is a step that a save in flight will delete. Ties go to the later step, as in BestN.
    """
    steps = self._manager.all_steps()
    scored = [(metrics[BEST_METRIC], step) for step in steps
              if BEST_METRIC in (metrics := self._manager.metrics(step) or {})]
    if not scored:
      return self._best_of_old_workdir(steps)
    val_psnr, step = max(scored)
    return {"step": step, BEST_METRIC: val_psnr}

  def _best_of_old_workdir(self, steps: list[int]) -> dict[str, float] | None:
    """The `best.json` of a workdir written before the steps' metrics were saved, when it names a step that exists."""
    path = self.directory / BEST_FILE
    try:
      recorded = json.loads(path.read_text())
    except (OSError, ValueError):
      return None
    return recorded if isinstance(recorded, dict) and recorded.get("step") in steps else None

  def _record_best(self) -> None:
    """Writes best() to `best.json` (or removes it when None), atomically, on process 0 only."""
    if jax.process_index() != 0:
      return
    path, best = self.directory / BEST_FILE, self.best()
    if best is None:
      path.unlink(missing_ok=True)
      return
    storage.write_whole(path, json.dumps(best) + "\n")

  def has_data_iterator(self, step: int) -> bool:
    """Whether the checkpoint at `step` holds a data iterator's position (converted ones do not)."""
    return (self.directory / str(self._checked(step)) / _DATA_ITEM).is_dir()

  def restore(self, step: int, abstract_state: Any, data_iterator: grain.DatasetIterator | None = None) -> Any:
    """The state at `step`, placed as `abstract_state` says; restores `data_iterator` in place if given."""
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items[_DATA_ITEM] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self._read(step, items)["state"]

  def restore_part(self, step: int, abstract_part: dict[str, Any]) -> dict[str, Any]:
    """The fields of the state at `step` that `abstract_part` names ({field: abstract subtree}), and only those:
    a partial restore reads nothing else from disk."""
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_part)
    item = ocp.args.PyTreeRestore(item=abstract_part, restore_args=restore_args, partial_restore=True)
    return self._read(step, {"state": item})["state"]

  def metadata(self, step: int) -> dict[str, Any]:
    return self._read(step, {"metadata": ocp.args.JsonRestore()})["metadata"]

  def _read(self, step: int, items: dict[str, Any]) -> Any:
    """The `items` of the checkpoint at `step`; CheckpointError naming its folder when they cannot be read."""
    try:
      return self._manager.restore(self._checked(step), args=ocp.args.Composite(**items))
    except CheckpointError:
      raise
    except Exception as error:  # Orbax and TensorStore raise ValueError, OSError, KeyError, ... for damaged files
      if not (self.directory / str(step)).is_dir():
        raise CheckpointDeleted(f"the checkpoint {self.directory / str(step)} was deleted while it was read: the "
                                "training run keeps only its newest config.keep_checkpoints steps") from error
      reason = " ".join(str(error).split(orphaned_io.TENSORSTORE_SPEC)[0].split())[:300]
      raise CheckpointError(f"the checkpoint {self.directory / str(step)} cannot be read: it is damaged, "
                            f"incomplete or from an incompatible version ({self._versions_note(step, items)}; "
                            f"{type(error).__name__}: {reason}); delete that folder to use the one before it "
                            f"(steps: {self.all_steps()})") from error

  def _versions_note(self, step: int, items: dict[str, Any]) -> str:
    """'written by <versions>; read by <versions>', the first from the step's metadata where it is readable."""
    written = "unknown versions"
    if "metadata" not in items:  # else the metadata item is what failed
      try:
        metadata = self._manager.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))["metadata"]
        written = metadata_lib.format_versions(metadata["versions"]) if "versions" in metadata else "versions not recorded"
      except Exception:  # pylint: disable=broad-except (whatever fails, the versions are unknown)
        pass
    return f"written by {written}; read by {metadata_lib.format_versions(metadata_lib.versions())}"

  def resolve_step(self, step: str | int) -> int:
    """'latest', 'best' or a step number → an existing step; CheckpointError naming what exists otherwise."""
    steps = self.all_steps()
    if not steps:
      raise CheckpointError(f"no checkpoints in {self.directory}")
    if step == "best":
      best = self.best()
      if best is None:
        raise CheckpointError(f"no best checkpoint in {self.directory}: validation never ran "
                              "(config.eval_every_steps)")
      return self._checked(best["step"])
    return steps[-1] if step == "latest" else self._checked(int(step))

  def _checked(self, step: int) -> int:
    if step not in self._manager.all_steps():
      raise CheckpointError(f"no checkpoint at step {step} in {self.directory}; steps there: {self.all_steps()}")
    return step

  def wait(self) -> None:
    """Blocks until every save is committed (and the steps it drops deleted); then rewrites best.json."""
    self._manager.wait_until_finished()
    if self._saved:
      self._record_best()
      self._remove_deleted()

  def _remove_deleted(self) -> None:
    """Removes the steps the retention policy moved into DELETED_DIR (each one whole: Orbax moves them there)."""
    deleted = self.directory / DELETED_DIR
    for step in deleted.iterdir() if deleted.is_dir() else ():
      shutil.rmtree(step, ignore_errors=True)

  def close(self) -> None:
    self.wait()
    self._manager.close()


def _open_manager(directory: storage.Path, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
  """Orbax's manager of `directory`. Opening lists the steps, then reads each one's metadata: a step that a
  training run's retention deletes in between is a FileNotFoundError inside `directory`; listing again
  (up to _OPEN_TRIES times) no longer finds it."""
  for _ in range(_OPEN_TRIES - 1):
    try:
      return ocp.CheckpointManager(directory, options=options)
    except FileNotFoundError as error:
      if not os.fspath(error.filename or "").startswith(os.fspath(directory)):
        raise
  return ocp.CheckpointManager(directory, options=options)


def _score(metrics: dict[str, float]) -> float:
  """The rank of a step for BestN: its validation PSNR; -inf for a step saved without validation."""
  return metrics.get(BEST_METRIC, -math.inf)
