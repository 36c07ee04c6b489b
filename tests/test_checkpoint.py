"""Checkpoints in-process: the best is read from committed steps only, and outlives restarts; versions."""

import asyncio
import gc
import json
import pathlib
import threading

import jax
import numpy as np
import pytest
from conftest import tiny_config
from etils import epath
from orbax.checkpoint.path import atomicity

import sar2optical
from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import make_metadata, versions
from sar2optical.core.errors import CheckpointError
from sar2optical.model.pixels import PixelSpec

STATE = {"w": np.arange(4, dtype=np.float32)}
ABSTRACT = {"w": jax.ShapeDtypeStruct((4,), np.float32)}


def save(checkpoints: manager.Checkpoints, step: int, val_psnr: float | None = None, **metadata) -> None:
  checkpoints.save(step, STATE, None, {"step": step, "versions": versions(), **metadata}, val_psnr=val_psnr)


def recorded_best(workdir) -> dict[str, float]:
  return json.loads((manager.checkpoint_dir(workdir) / manager.BEST_FILE).read_text())


def test_best_ignores_a_step_that_is_not_committed(tmp_path, monkeypatch):
  """Step 2, a new best, is held just before Orbax renames its temporary folder: step 1 stays the best."""
  release = threading.Event()
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def held(self, *args, **kwargs):
    if self.get_final().name == "2":
      await asyncio.to_thread(release.wait)
    return await finalize(self, *args, **kwargs)

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", held)
  checkpoints = manager.Checkpoints(tmp_path, keep=2)
  try:
    save(checkpoints, 1, val_psnr=10.0)
    save(checkpoints, 2, val_psnr=20.0)  # returns once step 1 is committed; step 2 is held
    assert checkpoints.all_steps() == [1, 2]
    assert checkpoints.best() == {"step": 1, "val_psnr": 10.0} == recorded_best(tmp_path)
    assert checkpoints.resolve_step("best") == 1
    assert manager.Checkpoints(tmp_path, create=False).best() == {"step": 1, "val_psnr": 10.0}  # as eval.py sees it
  finally:
    release.set()
    checkpoints.wait()
  assert checkpoints.best() == {"step": 2, "val_psnr": 20.0} == recorded_best(tmp_path)
  checkpoints.close()


def test_the_best_checkpoint_survives_a_restart(tmp_path):
  """keep=1: the best step's metrics are committed with it, so a resumed run still keeps it."""
  checkpoints = manager.Checkpoints(tmp_path, keep=1)
  save(checkpoints, 1, val_psnr=20.0)
  save(checkpoints, 2, val_psnr=10.0)
  checkpoints.close()
  resumed = manager.Checkpoints(tmp_path, keep=1)
  save(resumed, 3)
  resumed.close()
  reader = manager.Checkpoints(tmp_path, create=False)
  assert reader.all_steps() == [1, 3]
  assert reader.best() == {"step": 1, "val_psnr": 20.0} == recorded_best(tmp_path)


def test_without_validation_there_is_no_best(tmp_path):
  checkpoints = manager.Checkpoints(tmp_path, keep=1)
  save(checkpoints, 1)
  checkpoints.close()
  reader = manager.Checkpoints(tmp_path, create=False)
  assert reader.best() is None and not (reader.directory / manager.BEST_FILE).exists()
  with pytest.raises(CheckpointError, match="no best checkpoint .*validation never ran"):
    reader.resolve_step("best")


def test_an_unreadable_checkpoint_names_the_versions_that_wrote_and_read_it(tmp_path):
  checkpoints = manager.Checkpoints(tmp_path)
  save(checkpoints, 1, versions={"sar2optical": "0.0.1", "jax": "0.4.1"})
  checkpoints.close()
  for path in (checkpoints.directory / "1" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"damaged")
  reader = manager.Checkpoints(tmp_path, create=False)
  reading = f"; read by sar2optical {sar2optical.__version__}, jax {jax.__version__}, "
  with pytest.raises(CheckpointError, match="cannot be read") as error:
    reader.restore(1, ABSTRACT)
  assert f"written by sar2optical 0.0.1, jax 0.4.1{reading}" in str(error.value), error.value
  (checkpoints.directory / "1" / "metadata" / "metadata").write_text("{damaged")
  with pytest.raises(CheckpointError) as error:
    reader.metadata(1)
  assert f"written by unknown versions{reading}" in str(error.value), error.value


def test_metadata_records_the_versions():
  recorded = make_metadata(tiny_config("unused"), PixelSpec(), 7)["versions"]
  assert recorded == versions()
  assert recorded["sar2optical"] == sar2optical.__version__ and recorded["jax"] == jax.__version__
  assert {"flax", "orbax-checkpoint"} <= set(recorded)


def test_a_step_deleted_while_the_checkpoints_are_listed_is_left_out(tmp_path, monkeypatch):
  """eval.py opens a workdir while train.py's retention deletes a step: between Orbax's listing of step 1 and its
  read of step 1's metadata, step 1 moves away as the retention moves it; the opened checkpoints are [2]."""
  checkpoints = manager.Checkpoints(tmp_path)
  save(checkpoints, 1)
  save(checkpoints, 2)
  checkpoints.close()
  step_1 = checkpoints.directory / "1"
  exists = epath.backend._OsPathBackend.exists

  def exists_while_retention_deletes(backend, path):  # Orbax asks before reading a step's metadata
    if pathlib.Path(path).parent == step_1 and step_1.exists():
      (checkpoints.directory / manager.DELETED_DIR).mkdir(exist_ok=True)
      step_1.rename(checkpoints.directory / manager.DELETED_DIR / "1")
    return exists(backend, path)

  monkeypatch.setattr(epath.backend._OsPathBackend, "exists", exists_while_retention_deletes)
  assert manager.Checkpoints(tmp_path, create=False).all_steps() == [2]


def orphaned_task_logs(message: str, caplog) -> list[str]:
  """What asyncio logs for a task that failed with ValueError(`message`) and that nobody awaited."""
  async def fail():
    raise ValueError(message)

  loop = asyncio.new_event_loop()
  task = loop.create_task(fail())
  loop.run_until_complete(asyncio.sleep(0))
  loop.close()
  caplog.clear()
  with caplog.at_level("ERROR", logger="asyncio"):
    del task
    gc.collect()
  return [record.getMessage() for record in caplog.records]


def test_orphaned_writes_on_a_full_disk_do_not_follow_the_one_line_error(tmp_path, caplog):
  """After DiskFull's one line, TensorStore's other failed writes must not be logged at exit; other errors are."""
  manager.Checkpoints(tmp_path).close()  # installs the filter
  full = ('RESOURCE_EXHAUSTED: Error writing "rng/0" in OCDBT database at local file "/x/": Failed to write '
          "1650688 bytes to file 9: No space left on device [os_error_code='28']")
  assert orphaned_task_logs(full, caplog) == []
  assert any("never retrieved" in message for message in orphaned_task_logs("some other failure", caplog))


def test_an_old_workdirs_best_json_is_honoured_while_it_names_a_step_there(tmp_path):
  """Workdirs written before the steps carried their metrics have only best.json: eval.py --steps=best still works."""
  checkpoints = manager.Checkpoints(tmp_path, keep=3)
  save(checkpoints, 1)
  save(checkpoints, 2)
  checkpoints.close()
  best_file = manager.checkpoint_dir(tmp_path) / manager.BEST_FILE
  best_file.write_text(json.dumps({"step": 1, "val_psnr": 17.5}) + "\n")
  reader = manager.Checkpoints(tmp_path, create=False)
  assert reader.best() == {"step": 1, "val_psnr": 17.5} and reader.resolve_step("best") == 1
  best_file.write_text(json.dumps({"step": 7, "val_psnr": 17.5}) + "\n")  # a step that is gone
  with pytest.raises(CheckpointError, match="no best checkpoint"):
    reader.resolve_step("best")
  reader.close()
