"""A run is never lost: SIGKILL at three points, SIGTERM and SIGINT, NaN losses, config changes on resume."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
from conftest import TRAIN_STEPS, file_digests, finish, saved_state, start, tiny_config, train_command

from sar2optical.checkpoints import manager
from sar2optical.core.errors import ConfigError, StoppedBySignal, TrainingDiverged
from sar2optical.training import loop


def hanging_in_save(where: str, step: int, marker: pathlib.Path, train: list[str]) -> list[str]:
  """`train` (a train_command()) run by tests/helpers/hang_in_save.py: hanging in the save of `step` (data|commit)."""
  return [sys.executable, "tests/helpers/hang_in_save.py", where, str(step), str(marker), *train[2:]]


def wait_for(marker: pathlib.Path, process: subprocess.Popen) -> None:
  """Returns once `marker` exists (the save hangs); fails if `process` ends first or after 5 minutes."""
  deadline = time.monotonic() + 300
  while not marker.exists():
    assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
    time.sleep(0.1)


def read_until(process: subprocess.Popen, pattern: str) -> str:
  """The stderr of `process` up to and including the first line matching `pattern`."""
  seen = []
  for line in process.stderr:
    seen.append(line)
    if re.search(pattern, line):
      return "".join(seen)
  raise AssertionError(f"{pattern!r} never appeared:\n" + "".join(seen)[-3000:])


def test_sigkill_inside_a_save_and_between_saves_then_resume_is_bitwise_identical(demo_root, straight_run, tmp_path):
  workdir, marker = tmp_path / "killed", tmp_path / "saving"
  # Kill 1: inside the save of step 4 (the wrapper hangs there once the checkpoint's temporary folder exists).
  process = start(hanging_in_save("data", 4, marker, train_command(workdir, demo_root)))
  wait_for(marker, process)
  half_written = [path.name for path in (workdir / "checkpoints").iterdir() if path.name.startswith("4.")]
  assert half_written and "tmp" in half_written[0], half_written
  process.kill()
  process.wait()
  # Kill 2: between saves, right after step 7 is logged (the checkpoint of step 6 may still be in flight).
  process = start(train_command(workdir, demo_root))
  log = read_until(process, r"step 7/8")
  assert "Resuming from the checkpoint at step 2" in log, log[-3000:]
  process.kill()
  process.wait()
  assert not (workdir / "checkpoints" / "8").exists()

  status, log = finish(start(train_command(workdir, demo_root)))
  assert status == 0, log[-3000:]
  assert re.search(r"Resuming from the checkpoint at step [46]\b", log), log[-3000:]
  assert re.search(r"Took over the lock of a training run on host \S+, pid \d+, started \S+, which ended without "
                   r"releasing it \(killed\?\)", log), log[-3000:]
  assert not [path for path in (workdir / "checkpoints").iterdir() if "tmp" in path.name]
  straight, resumed = saved_state(straight_run), saved_state(workdir)
  assert int(straight.step) == int(resumed.step) == TRAIN_STEPS
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)  # params, BatchNorm stats, Adam, RNG


def test_sigkill_inside_the_save_of_a_new_best_then_eval_best_scores_a_committed_step(demo_root, tmp_path):
  """Validation at steps 3 and 6; SIGKILL while step 6, a new best, is written but not committed.

  The best is then step 3, the best committed step: eval.py --steps=best scores it.
  """
  workdir, marker, scores = tmp_path / "killed", tmp_path / "saving", tmp_path / "best.json"
  process = start(hanging_in_save("commit", 6, marker, train_command(workdir, demo_root, "--config.eval_every_steps=3")))
  wait_for(marker, process)
  process.kill()
  process.wait()
  logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  val_psnr = {entry["step"]: entry["val_psnr"] for entry in logged if "val_psnr" in entry}
  assert sorted(val_psnr) == [3, 6] and val_psnr[6] > val_psnr[3], val_psnr  # step 6 was a new best
  assert not (workdir / "checkpoints" / "6").exists()

  status, log = finish(start([sys.executable, "eval.py", f"--workdir={workdir}", "--steps=best", "--split=val",
                              f"--output_json={scores}"]))
  assert status == 0, log[-3000:]
  result = json.loads(scores.read_text())
  assert result["step"] == 3 and (workdir / "checkpoints" / "3").is_dir()
  assert result["overall"]["psnr"]["mean"] == pytest.approx(val_psnr[3], abs=1e-4)


def test_sigterm_saves_the_current_step_and_exits_then_resume_is_bitwise_identical(demo_root, straight_run,
                                                                                  tmp_path):
  workdir = tmp_path / "preempted"
  process = start(train_command(workdir, demo_root, "--config.checkpoint_every_steps=100"))
  read_until(process, r"step 3/8")
  process.send_signal(signal.SIGTERM)
  status, log = finish(process)
  assert status == 128 + signal.SIGTERM, log[-3000:]
  stopped = re.search(r"Stopped by SIGTERM after step (\d) of 8: the checkpoint is in (\S+);", log)
  assert stopped and "Traceback" not in log, log[-3000:]
  step = int(stopped.group(1))
  assert pathlib.Path(stopped.group(2)) == workdir / "checkpoints" / str(step)
  assert 3 <= step < TRAIN_STEPS and manager.Checkpoints(workdir, create=False).all_steps() == [step]

  status, log = finish(start(train_command(workdir, demo_root)))
  assert status == 0 and f"Resuming from the checkpoint at step {step}" in log, log[-3000:]
  jax.tree.map(np.testing.assert_array_equal, saved_state(straight_run), saved_state(workdir))


def test_sigint_saves_the_current_step(demo_root, tmp_path):
  """Ctrl-C in-process: the step in progress ends, is saved, and the stop reports exit status 130."""
  config = tiny_config(demo_root, num_train_steps=1000, checkpoint_every_steps=1000, log_every_steps=1,
                       eval_every_steps=0)
  def interrupt_after_the_first_log_line():
    deadline = time.monotonic() + 600
    metrics = tmp_path / "metrics.jsonl"  # made before the handlers are set; written to only after
    while not (metrics.exists() and metrics.stat().st_size) and time.monotonic() < deadline:
      time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGINT)

  handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest was started in the background
  interrupter = threading.Thread(target=interrupt_after_the_first_log_line)
  interrupter.start()
  try:
    with pytest.raises(StoppedBySignal, match=r"Stopped by SIGINT after step \d+ of 1000") as stop:
      loop.train(config, tmp_path)
  finally:
    interrupter.join()
  assert stop.value.exit_status == 128 + signal.SIGINT
  step = int(re.search(r"after step (\d+)", str(stop.value)).group(1))
  assert manager.Checkpoints(tmp_path, create=False).all_steps() == [step]
  assert signal.getsignal(signal.SIGINT) is handler_before  # the handler is put back


def test_nan_stops_naming_the_first_bad_step_and_keeps_the_last_good_checkpoint(demo_root, tmp_path):
  """A diverging learning rate; the check runs only at log and checkpoint boundaries (every 4 steps)."""
  good = tiny_config(demo_root, num_train_steps=4, checkpoint_every_steps=4, log_every_steps=4, eval_every_steps=0)
  loop.train(good, tmp_path)
  before = file_digests(tmp_path / "checkpoints")
  diverging = tiny_config(demo_root, num_train_steps=12, checkpoint_every_steps=4, log_every_steps=4,
                          eval_every_steps=0, **{"optimizer.learning_rate": 1e30})
  with pytest.raises(TrainingDiverged, match=r"NaN or Inf at step (\d+); .*last good checkpoint, step 4") as error:
    loop.train(diverging, tmp_path)
  bad_step = int(re.search(r"at step (\d+)", str(error.value)).group(1))
  assert 5 <= bad_step <= 8
  assert file_digests(tmp_path / "checkpoints") == before  # nothing saved, the good checkpoint untouched
  # Checked at every step, the run stops at that very step: the first bad one.
  every_step = tiny_config(demo_root, num_train_steps=12, checkpoint_every_steps=1, log_every_steps=1,
                           eval_every_steps=0, **{"optimizer.learning_rate": 1e30})
  with pytest.raises(TrainingDiverged, match=rf"at step {bad_step}; .*last good checkpoint, step {bad_step - 1}"):
    loop.train(every_step, tmp_path)


@pytest.mark.parametrize("overrides, fields", [
    ({"model.levels": 4}, ["config.model.levels is 3 there, 4 here"]),
    ({"model.in_channels": 3, "model.disc_layers": 2},
     ["config.model.disc_layers is 3 there, 2 here", "config.model.in_channels is 1 there, 3 here"]),
])
def test_resuming_with_other_networks_names_the_fields(tiny_workdir, tmp_path, demo_root, overrides, fields):
  workdir = tmp_path / "run"
  shutil.copytree(tiny_workdir, workdir)
  before = file_digests(workdir)
  with pytest.raises(ConfigError, match="the networks of the checkpoint at step 2") as error:
    loop.train(tiny_config(demo_root, num_train_steps=3, **overrides), workdir)
  assert all(field in str(error.value) for field in fields), error.value
  assert file_digests(workdir) == before


def test_compatible_changes_resume_and_are_logged(tiny_workdir, tmp_path, demo_root, caplog):
  workdir = tmp_path / "run"
  shutil.copytree(tiny_workdir, workdir)
  caplog.set_level("INFO")
  state = loop.train(tiny_config(demo_root, num_train_steps=3, log_every_steps=3, checkpoint_every_steps=1,
                                    sample_every_steps=2), workdir)
  assert int(state.step) == 3
  assert "Config changes since the checkpoint at step 2: log_every_steps 1 -> 3; num_train_steps 2 -> 3" in caplog.text
