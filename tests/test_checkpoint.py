"""Checkpoints in-process: the best is read from committed steps only, and outlives restarts."""

import asyncio
import json
import threading

import jax
import numpy as np
import pytest
from orbax.checkpoint.path import atomicity

from sar2optical import checkpoint
from sar2optical.errors import CheckpointError

STATE = {"w": np.arange(4, dtype=np.float32)}
ABSTRACT = {"w": jax.ShapeDtypeStruct((4,), np.float32)}


def save(checkpoints: checkpoint.Checkpoints, step: int, val_psnr: float | None = None, **metadata) -> None:
  checkpoints.save(step, STATE, None, {"step": step, **metadata}, val_psnr=val_psnr)


def recorded_best(workdir) -> dict[str, float]:
  return json.loads((checkpoint.checkpoint_dir(workdir) / checkpoint.BEST_FILE).read_text())


def test_best_ignores_a_step_that_is_not_committed(tmp_path, monkeypatch):
  """Step 2, a new best, is held just before Orbax renames its temporary folder: step 1 stays the best."""
  release = threading.Event()
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def held(self, *args, **kwargs):
    if self.get_final().name == "2":
      await asyncio.to_thread(release.wait)
    return await finalize(self, *args, **kwargs)

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", held)
  checkpoints = checkpoint.Checkpoints(tmp_path, keep=2)
  try:
    save(checkpoints, 1, val_psnr=10.0)
    save(checkpoints, 2, val_psnr=20.0)  # returns once step 1 is committed; step 2 is held
    assert checkpoints.all_steps() == [1, 2]
    assert checkpoints.best() == {"step": 1, "val_psnr": 10.0} == recorded_best(tmp_path)
    assert checkpoints.resolve_step("best") == 1
    assert checkpoint.Checkpoints(tmp_path, create=False).best() == {"step": 1, "val_psnr": 10.0}  # as eval.py sees it
  finally:
    release.set()
    checkpoints.wait()
  assert checkpoints.best() == {"step": 2, "val_psnr": 20.0} == recorded_best(tmp_path)
  checkpoints.close()


def test_the_best_checkpoint_survives_a_restart(tmp_path):
  """keep=1: the best step's metrics are committed with it, so a resumed run still keeps it."""
  checkpoints = checkpoint.Checkpoints(tmp_path, keep=1)
  save(checkpoints, 1, val_psnr=20.0)
  save(checkpoints, 2, val_psnr=10.0)
  checkpoints.close()
  resumed = checkpoint.Checkpoints(tmp_path, keep=1)
  save(resumed, 3)
  resumed.close()
  reader = checkpoint.Checkpoints(tmp_path, create=False)
  assert reader.all_steps() == [1, 3]
  assert reader.best() == {"step": 1, "val_psnr": 20.0} == recorded_best(tmp_path)


def test_without_validation_there_is_no_best(tmp_path):
  checkpoints = checkpoint.Checkpoints(tmp_path, keep=1)
  save(checkpoints, 1)
  checkpoints.close()
  reader = checkpoint.Checkpoints(tmp_path, create=False)
  assert reader.best() is None and not (reader.directory / checkpoint.BEST_FILE).exists()
  with pytest.raises(CheckpointError, match="no best checkpoint .*validation never ran"):
    reader.resolve_step("best")
