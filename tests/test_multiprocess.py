"""Two JAX processes on localhost (jax.distributed, CPU collectives) train like one, and checkpoints move between them."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, saved_state

from sar2optical.training.state import TrainState

STEPS = 4


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


def train(workdir: pathlib.Path, root: pathlib.Path, processes: int) -> list[str]:
  """train.py on the tiny model, global batch 4, in `processes` processes of one CPU device each; or, for 1,
  in one process with two CPU devices (the same mesh, the same global batch). Returns each process's log."""
  args = [sys.executable, "train.py", "--config=configs/quickstart.py", f"--workdir={workdir}",
          f"--config.data.root={root}", "--config.image_size=32", "--config.batch_size=4", "--config.model.levels=3",
          f"--config.num_train_steps={STEPS}", "--config.checkpoint_every_steps=2", "--config.log_every_steps=1",
          "--config.sample_every_steps=100", "--config.eval_every_steps=0"]
  env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  if processes == 1:
    commands = [args]
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
  else:
    address = f"localhost:{free_port()}"
    commands = [[*args, f"--coordinator_address={address}", f"--num_processes={processes}", f"--process_id={index}"]
                for index in range(processes)]
  running = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for command in commands]
  logs = []
  try:
    for process in running:
      logs.append(process.communicate(timeout=600)[1])
  finally:
    for process in running:
      process.kill()
  assert all(process.returncode == 0 for process in running), "\n\n".join(log[-3000:] for log in logs)
  return logs


def max_abs_difference(a: TrainState, b: TrainState) -> float:
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def runs(demo_root, tmp_path_factory) -> dict[int, pathlib.Path]:
  """Workdirs of the same 4-step run in two processes and in one."""
  workdirs = {count: tmp_path_factory.mktemp(f"processes_{count}") for count in (2, 1)}
  for count, workdir in workdirs.items():
    train(workdir, demo_root, count)
  return workdirs


def test_two_processes_train_like_one(runs):
  data_positions = sorted(path.name for path in (runs[2] / "checkpoints" / str(STEPS) / "data").glob("*.json"))
  assert data_positions == ["process_0-of-2.json", "process_1-of-2.json"]  # one per process
  two, one = saved_state(runs[2]), saved_state(runs[1])
  assert int(two.step) == int(one.step) == STEPS
  assert max_abs_difference(two, one) <= 1e-5


@pytest.mark.parametrize("written_by, resumed_by", [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_on_another_process_count(runs, demo_root, tmp_path, written_by, resumed_by):
  """Step 2 written by `written_by` processes, resharded onto `resumed_by`, trained to 4: the same state."""
  workdir = tmp_path / "run"
  shutil.copytree(runs[written_by], workdir)
  shutil.rmtree(workdir / "checkpoints" / str(STEPS))
  logs = train(workdir, demo_root, resumed_by)
  assert all("Resuming from the checkpoint at step 2" in log for log in logs)
  assert all("the data order restarts at global step 2" in log for log in logs)
  assert max_abs_difference(saved_state(workdir), saved_state(runs[resumed_by])) <= 1e-5
