"""Faults that real runs meet: a full disk, two runs on one workdir, hostile or huge inputs.

Each is injected for real: a size-limited tmpfs filled with a file (skipped, with the reason, where
mounting is not permitted), a second process, files crafted byte by byte.
"""

import contextlib
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib

import jax
import numpy as np
import pytest
import rasterio
from conftest import REPO, file_digests, finish, saved_state, spread_generator, start, tiny_config, train_command
from PIL import Image
from test_bad_input import SAR, train_on, two_pairs

from sar2optical.checkpoints import manager
from sar2optical.core.errors import DataError, DiskFull, WorkdirInUse
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import splits
from sar2optical.evaluation import workflow
from sar2optical.inference import tile_engine
from sar2optical.model.pixels import SarScaling
from sar2optical.training import lock


@contextlib.contextmanager
def small_disk(path: pathlib.Path, megabytes: int):
  """A tmpfs of `megabytes` mounted at `path` for the block; skips where mounting is not permitted."""
  path.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                           capture_output=True, text=True)
  if mounted.returncode:
    pytest.skip(f"cannot mount a tmpfs to fill up: {mounted.stderr.strip() or mounted.returncode}")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: pathlib.Path, leave: int) -> pathlib.Path:
  """A file taking all of `disk`'s free space but `leave` bytes."""
  filler = disk / "filler"
  with open(filler, "wb") as file:
    os.posix_fallocate(file.fileno(), 0, shutil.disk_usage(disk).free - leave)
  return filler


# Disk full


def test_a_full_disk_stops_training_in_one_line_and_the_same_command_resumes_bitwise(demo_root, straight_run,
                                                                                    tmp_path):
  """Room for the checkpoint of step 2 and half of the next: the save of step 4 fails, step 2 stays."""
  with small_disk(tmp_path / "disk", 160) as disk:
    workdir = disk / "run"
    filler = fill(disk, leave=int(1.5 * manager.latest_bytes(straight_run)) + 4 * 2**20)
    status, log = finish(start(train_command(workdir, demo_root)))
    last = log.strip().splitlines()[-1]
    assert status == 2 and re.fullmatch(rf"error: the disk of {workdir} is full \([\d.]+ MB free, about [\d.]+ MB "
                                        r"needed\): free space there and run the same command again: .*", last), \
        log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert int(saved_state(workdir).step) == 2  # the committed checkpoint restores

    filler.unlink()
    status, log = finish(start(train_command(workdir, demo_root)))
    assert status == 0 and "Resuming from the checkpoint at step 2" in log, log[-3000:]
    assert not [path for path in (workdir / "checkpoints").iterdir() if "tmp" in path.name]
    jax.tree.map(np.testing.assert_array_equal, saved_state(straight_run), saved_state(workdir))


def test_predict_on_a_full_disk_stops_leaves_no_partial_output_and_a_rerun_completes(tmp_path):
  """Eight outputs of about 1 MB each on a 10 MB disk left room for about two: the one that fails is named, no
  further input starts, the summary says the space needed, nothing half-written stays, the rerun does the rest."""
  generator = spread_generator(tiny_config("unused"))
  inputs = tmp_path / "in"
  inputs.mkdir()
  rng = np.random.default_rng(0)
  for index in range(8):
    Image.fromarray(rng.integers(0, 256, (480, 640), np.uint8)).save(inputs / f"scene{index}.png")
  found = tile_engine.find_inputs(str(inputs))
  options = tile_engine.Options(batch_size=32)
  with small_disk(tmp_path / "disk", 10) as disk:
    filler = fill(disk, leave=2 * 2**20)
    summary = tile_engine.translate_files(generator, found, disk, options)
    assert summary.failed >= 1 and all("No space left on device" in error for error in summary.errors), summary
    assert summary.not_started >= 4 and summary.translated + summary.failed + summary.not_started == 8, summary
    assert re.fullmatch(rf"the disk of {disk} is full \(\d+\.\d MB free, at most \d+\.\d MB needed for the "
                        rf"{8 - summary.translated} inputs not translated\): free space there and run the same "
                        r"command again \(finished outputs are kept and skipped\)", summary.disk_full)
    assert f"not started {summary.not_started} (the disk is full)" in str(summary)
    assert sorted(path.name for path in disk.iterdir()) == sorted(
        ["filler", *(f"scene{index}.png" for index in range(summary.translated))])  # no .partial file
    written = file_digests(disk)
    filler.unlink()
    summary = tile_engine.translate_files(generator, found, disk, options)
    assert (summary.translated, summary.skipped, summary.failed) == (8 - len(written) + 1, len(written) - 1, 0)
    assert summary.disk_full is None
    with Image.open(disk / "scene7.png") as image:
      assert image.size == (640, 480)


def test_eval_on_a_full_disk_says_the_space_needed_and_leaves_no_partial_file(tiny_workdir, tmp_path):
  with small_disk(tmp_path / "disk", 1) as disk:
    fill(disk, leave=8192)
    with pytest.raises(DiskFull, match=rf"^the disk of {disk} is full \(0\.0 MB free, about \d+\.\d MB needed\): "
                       r"free space there \(or pass another --output_dir\) and run the same command again$"):
      workflow.evaluate(tiny_workdir, split="all", output_dir=str(disk))
    assert not [path for path in disk.rglob("*") if path.name.startswith(".")]


# Two runs, one workdir


def test_a_second_run_on_a_workdir_in_use_refuses_and_eval_reads_whole_steps_only(demo_root, tmp_path, caplog):
  """train.py A trains, saving every step and keeping 2; train.py B on the same workdir exits 2 naming A's host
  and pid; eval in a loop meanwhile scores whole steps only: `latest` a committed step, `all` the listed steps
  still there, naming those A's retention deleted since eval listed them."""
  workdir, log = tmp_path / "run", tmp_path / "train.log"
  with open(log, "w") as stderr:  # a file, not a pipe: a full pipe would block the run
    first = subprocess.Popen(train_command(workdir, demo_root, "--config.num_train_steps=2000",
                                           "--config.checkpoint_every_steps=1", "--config.keep_checkpoints=2",
                                           "--config.log_every_steps=500"),
                             cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"}, stdout=subprocess.DEVNULL,
                             stderr=stderr)
  caplog.set_level("WARNING")
  try:
    deadline = time.monotonic() + 300
    while not (workdir / "checkpoints" / "2").is_dir():
      assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
      time.sleep(0.2)
    second = subprocess.run(train_command(workdir, demo_root), cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().splitlines()[-1].startswith(
        f"error: the workdir {workdir} is in use by a training run on host {socket.gethostname()}, pid {first.pid}, ")
    latest, = workflow.evaluate(workdir, split="val", steps="latest", output_dir=str(tmp_path / "eval"))
    scored = [latest["step"]]
    while first.poll() is None and "was deleted by the training run" not in caplog.text:
      assert time.monotonic() < deadline, (scored, caplog.text[-2000:])
      scored += [result["step"] for result in workflow.evaluate(workdir, split="val", steps="all",
                                                                  output_dir=str(tmp_path / "eval"))]
  finally:
    first.kill()
    first.wait()
  assert re.search(r"Step \d+ was deleted by the training run \(config.keep_checkpoints\) since eval listed the "
                   r"steps; skipped", caplog.text), log.read_text()[-3000:]
  assert all((tmp_path / "eval" / f"step_{step}" / "metrics.json").is_file() for step in scored)


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_log_line(tmp_path, caplog):
  workdir = tmp_path / "run"
  workdir.mkdir()
  killed = subprocess.Popen([sys.executable, "-c", "import pathlib, sys, time; from sar2optical.training import "
                             "lock as workdir_lock; lock = workdir_lock.held(pathlib.Path(sys.argv[1])); lock.__enter__(); "
                             "print('held', flush=True); time.sleep(600)", str(workdir)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert killed.stdout.readline() == "held\n"
  with pytest.raises(WorkdirInUse, match=rf"in use by a training run on host \S+, pid {killed.pid}, started "):
    with lock.held(workdir):
      pass
  killed.kill()
  killed.wait()
  caplog.set_level("INFO")
  with lock.held(workdir):
    assert f"Took over the lock of a training run on host {socket.gethostname()}, pid {killed.pid}" in caplog.text
  assert (workdir / lock.LOCK_FILE).read_text() == ""  # a run that ends leaves no holder


# Hostile or huge inputs


def png_declaring(width: int, height: int) -> bytes:
  """A PNG whose header declares `width` x `height` grey pixels, followed by one row of data."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
          + chunk(b"IEND", b""))


def tiff_declaring(width: int, height: int, bands: int, bits: int, pixels: bytes, sample_format: int = 1) -> bytes:
  """A baseline little-endian TIFF declaring `width` x `height` x `bands` of `bits`-bit samples (unsigned
  integers; `sample_format` 3: IEEE floats) in one strip, holding `pixels` (whatever their size)."""
  entries = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 8),
             (277, 3, bands), (278, 4, height), (279, 4, len(pixels)), (284, 3, 1), (339, 3, sample_format)]
  ifd = struct.pack("<H", len(entries)) + b"".join(
      struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
      for tag, kind, value in entries) + struct.pack("<I", 0)
  return b"II*\0" + struct.pack("<I", 8 + len(pixels)) + pixels + ifd


def geotiff_with_broken_overview(path: pathlib.Path) -> None:
  """A 512² uint8 GeoTIFF whose internal overviews (written last, at the file's end) are overwritten with junk."""
  profile = dict(driver="GTiff", width=512, height=512, count=1, dtype="uint8", tiled=True)
  with rasterio.open(path, "w", **profile) as dataset:
    dataset.write(np.random.default_rng(0).integers(0, 256, (1, 512, 512), np.uint8))
  size = path.stat().st_size
  with rasterio.open(path, "r+") as dataset:
    dataset.build_overviews([2, 4])
  with open(path, "r+b") as file:
    file.seek(size + 64)
    file.write(b"\xff" * (path.stat().st_size - size - 64))


HOSTILE = [
    ("decompression-bomb PNG", lambda path: path.with_suffix(".png").write_bytes(png_declaring(200_000, 200_000)),
     r"Image size \(40000000000 pixels\) exceeds limit of \d+ pixels, could be decompression bomb"),  # Pillow's
    ("PNG over the pixel limit", lambda path: path.with_suffix(".png").write_bytes(png_declaring(10_000, 10_000)),
     r"declares 10000x10000 pixels, more than the \d+ that PNG and JPEG files may have here"),
    ("TIFF of absurd dimensions", lambda path: path.with_suffix(".tif").write_bytes(
        tiff_declaring(1_000_000, 1_000_000, 1, 8, bytes(64))), r"declares 1000000x1000000 pixels in 1 bands .* "
     r"more than 10000 times its size: its header is damaged"),
    ("TIFF whose band count lies", lambda path: path.with_suffix(".tif").write_bytes(
        tiff_declaring(64, 64, 4, 8, bytes(64 * 64))), r"cannot (open raster|read rows 0-\d+ of) "),
]


@pytest.mark.parametrize("make, message", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_inputs_fail_by_name_before_memory_or_time_blow_up(make, message, tmp_path):
  (tmp_path / "in").mkdir()
  make(tmp_path / "in" / "scene")
  found = tile_engine.find_inputs(str(tmp_path / "in"))
  began = time.monotonic()
  summary = tile_engine.translate_files(spread_generator(tiny_config("unused")), found, tmp_path / "out")
  assert summary.failed == 1 and re.search(message, summary.errors[0]), summary.errors
  assert str(found[0][0]) in summary.errors[0] and time.monotonic() - began < 30
  assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_tiff_whose_sample_type_lies_fails_by_name(tmp_path):
  """float32 dB declared, a quarter of the bytes stored (8-bit data): the first read fails, named."""
  (tmp_path / "in").mkdir()
  (tmp_path / "in" / "scene.tif").write_bytes(tiff_declaring(64, 64, 1, 32, bytes(64 * 64), sample_format=3))
  found = tile_engine.find_inputs(str(tmp_path / "in"))
  options = tile_engine.Options(sar=SarScaling(units="db"))
  summary = tile_engine.translate_files(spread_generator(tiny_config("unused")), found, tmp_path / "out", options)
  assert summary.failed == 1 and re.search(r"cannot (open raster|read rows 0-\d+ of) ", summary.errors[0])
  assert str(found[0][0]) in summary.errors[0] and not (tmp_path / "out" / "scene.tif").exists()


def test_a_decompression_bomb_in_the_training_data_is_named(tmp_path):
  root = two_pairs(tmp_path / "data")
  (root / SAR.format(2)).write_bytes(png_declaring(200_000, 200_000))
  with pytest.raises(DataError, match=rf"image {root / SAR.format(2)} declares 200000x200000 pixels, more than the \d+ "):
    train_on(root, tmp_path / "run")()


def test_a_broken_overview_and_a_symlink_loop_do_not_stop_predict(tmp_path):
  """Overviews are never read (scenes are read at full resolution); rglob does not follow linked folders."""
  inputs = tmp_path / "in"
  (inputs / "sub").mkdir(parents=True)
  geotiff_with_broken_overview(inputs / "sub" / "scene.tif")
  (inputs / "sub" / "loop").symlink_to(inputs)
  (inputs / "self.png").symlink_to(inputs / "self.png")
  found = tile_engine.find_inputs(str(inputs))
  assert [relative for _, relative in found] == [pathlib.Path("sub/scene.tif")]
  summary = tile_engine.translate_files(spread_generator(tiny_config("unused")), found, tmp_path / "out")
  assert (summary.translated, summary.failed) == (1, 0), summary.errors


def test_a_split_file_naming_paths_outside_the_data_root_is_refused(demo_root, tmp_path):
  """Split entries are matched against the pairs found under the root, never opened as paths."""
  found = pairs_lib.find_pairs(demo_root)
  outside = [pair.s1 for pair in found[:2]] + ["../../../etc/passwd"]
  path = tmp_path / "split.json"
  splits.write_split(path, {"data": {"train": outside, "val": [], "test": []}})
  with pytest.raises(DataError, match=re.escape("data.train[2] = '../../../etc/passwd' is not among the pairs")):
    splits.select(found, splits.read_split(path), "train")
