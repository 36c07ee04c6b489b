"""A workdir written by version 0.1 (tests/data/workdir_v0.1, made as tests/data/README.md says) with today's code.

Today's train.py resumes it, eval.py scores it, predict.py and `sar2optical.load` translate with it (inference
restores the generator alone: it must give the pixels of a whole-state restore, and 0.1's), and it exports as
the original's state_dicts. The stored folders are copied first: nothing here writes under tests/data.
"""

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy
from PIL import Image

import sar2optical
from sar2optical.core.errors import ConfigError
from sar2optical.inference.restore import load_generator
from sar2optical.interop import torch_export, torch_import, torch_names

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
WORKDIR = DATA / "workdir_v0.1"  # trained by 0.1 for 4 steps: checkpoints at 2 (the best) and 4
PAIRS = DATA / "pairs_v0.1"  # the 8 synthetic pairs it was trained on
PREDICTED = DATA / "predicted_v0.1"  # 0.1's predict.py of PAIRS' SAR images with it (latest step)
EVALUATED = DATA / "eval_v0.1.json"  # 0.1's eval.py --steps=all of it (the test split)
LATEST, BEST = 4, 2
# The flags 0.1's train.py ran with (tests/data/README.md), but for --workdir, data root and num_train_steps.
TRAIN_FLAGS = ["--config=configs/quickstart.py", "--config.image_size=32", "--config.batch_size=2",
               "--config.model.levels=1", "--config.model.disc_layers=1", "--config.model.ema_decay=0",
               "--config.checkpoint_every_steps=2", "--config.keep_checkpoints=2", "--config.eval_every_steps=2",
               "--config.eval_batch_size=2", "--config.log_every_steps=1", "--config.sample_every_steps=4",
               "--config.data.workers=0"]
# 0.1's outputs were written on another run of XLA's CPU backend: a rounding may land one grey level apart.
UINT8_TOLERANCE = 1


def run(script: str, *args: str) -> subprocess.CompletedProcess:
  """`script` of today's repository run as a user runs it, on the CPU."""
  return subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, capture_output=True, text=True,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=600)


def copy_stored(target: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """(workdir, pairs): copies of the stored 0.1 workdir and its data under `target`."""
  workdir, pairs = target / "workdir_v0.1", target / "pairs_v0.1"
  shutil.copytree(WORKDIR, workdir)
  shutil.copytree(PAIRS, pairs)
  return workdir, pairs


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
  """(workdir, pairs) copied once for the tests that only read them."""
  return copy_stored(tmp_path_factory.mktemp("v01"))


def sar_images(pairs: pathlib.Path) -> dict[str, np.ndarray]:
  """{path below `pairs`: uint8 (32, 32)} of the stored SAR images."""
  return {str(path.relative_to(pairs)): np.asarray(Image.open(path)) for path in sorted(pairs.glob("*/s1/*.png"))}


def assert_close_to_v01(ours: np.ndarray, name: str) -> None:
  """`ours` (uint8 RGB) is 0.1's prediction of the SAR image `name` (within UINT8_TOLERANCE)."""
  theirs = np.asarray(Image.open(PREDICTED / name))
  assert ours.shape == theirs.shape == (32, 32, 3) and ours.dtype == np.uint8, name
  difference = np.abs(ours.astype(int) - theirs.astype(int)).max()
  assert difference <= UINT8_TOLERANCE, (name, difference)


def assert_same_leaves(a, b) -> None:
  """Two pytrees with the same structure and, leaf by leaf, the same dtype, shape and bytes."""
  a, b = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
  assert [path for path, _ in a] == [path for path, _ in b]
  for (_, x), (_, y) in zip(a, b, strict=True):
    x, y = np.asarray(x), np.asarray(y)
    assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes())


def test_stored_workdir_is_as_described():
  assert sorted(p.name for p in (WORKDIR / "checkpoints").iterdir() if p.is_dir()) == [str(BEST), str(LATEST)]
  assert json.loads((WORKDIR / "checkpoints" / "best.json").read_text())["step"] == BEST
  assert (WORKDIR / "split.json").is_file() and (WORKDIR / "metrics.jsonl").is_file()
  assert json.loads((WORKDIR / "config.json").read_text())["model"]["levels"] == 1


def test_train_resumes_the_old_workdir(tmp_path):
  workdir, pairs = copy_stored(tmp_path)
  result = run("train.py", *TRAIN_FLAGS, f"--workdir={workdir}", f"--config.data.root={pairs}",
               "--config.num_train_steps=6")
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resuming from the checkpoint at step {LATEST}" in result.stderr
  assert "step 5/6" in result.stderr and "step 6/6" in result.stderr and "step 1/6" not in result.stderr
  assert (workdir / "checkpoints" / "6" / "state").is_dir()
  assert load_generator(workdir).step == 6
  logged = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert logged[-1] == 6 and 5 in logged


@pytest.mark.parametrize("steps, step", [("latest", LATEST), ("best", BEST)])
def test_eval_scores_the_old_workdir_as_01_did(stored, tmp_path, steps, step):
  workdir, pairs = stored
  result = run("eval.py", f"--workdir={workdir}", f"--steps={steps}", f"--data_root={pairs}",
               f"--output_dir={tmp_path / 'eval'}", f"--output_json={tmp_path / 'report.json'}")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp_path / "eval" / f"step_{step}" / "metrics.json").read_text())
  psnr = metrics["overall"]["psnr"]["mean"]
  assert math.isfinite(psnr)
  then = {entry["step"]: entry for entry in json.loads(EVALUATED.read_text())["steps"]}[step]
  assert metrics["n"] == then["n"] == 2 and metrics["split"] == then["split"] == "test"
  assert psnr == pytest.approx(then["overall"]["psnr"]["mean"], abs=1e-3)


def test_predict_translates_the_stored_pairs_as_01_did(stored, tmp_path):
  workdir, pairs = stored
  output = tmp_path / "out"
  result = run("predict.py", f"--workdir={workdir}", f"--input={pairs}/*/s1/*.png", f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "translated 8, skipped 0, failed 0" in result.stdout
  written = sorted(str(path.relative_to(output)) for path in output.rglob("*.png"))
  assert written == sorted(sar_images(pairs)) == sorted(str(p.relative_to(PREDICTED)) for p in PREDICTED.rglob("*.png"))
  for name in written:
    assert_close_to_v01(np.asarray(Image.open(output / name)), name)


@pytest.mark.parametrize("step", ["latest", "best"])
def test_generator_alone_gives_the_pixels_of_a_whole_state_restore(stored, step):
  workdir, pairs = stored
  translator = sar2optical.load(workdir, step)
  whole, state = torch_export.load_state(workdir, translator.step)  # G, D and both Adam states, as 0.1 restored
  assert translator.step == whole.step == {"latest": LATEST, "best": BEST}[step]
  assert_same_leaves(translator.generator.g_params, state.g_params)
  assert_same_leaves(translator.generator.g_stats, state.g_stats)
  images = sar_images(pairs)
  batch = np.stack(list(images.values()))[..., None]
  assert np.asarray(translator.generator(batch)).tobytes() == np.asarray(whole(batch)).tobytes()
  reference = sar2optical.Translator(whole)
  for name, sar in images.items():
    ours = translator.translate(sar)
    assert ours.tobytes() == reference.translate(sar).tobytes(), name
    assert ours.std() > 0
    if step == "latest":
      assert_close_to_v01(ours, name)


def test_exports_the_originals_state_dicts(stored, tmp_path, monkeypatch):
  workdir, _ = stored
  monkeypatch.setitem(sys.modules, "torch", None)  # safetensors only: `import torch` raises ImportError
  with pytest.raises(ConfigError, match=r"needs torch"):
    torch_export.export_torch(workdir, tmp_path / "torch")
  assert sorted(p.name for p in (tmp_path / "torch").iterdir()) == ["disc.safetensors", "gen.safetensors"]
  _, state = torch_export.load_state(workdir)
  expected = {"gen": torch_names.to_torch({"params": state.g_params, "batch_stats": state.g_stats},
                                          batches_tracked=LATEST),
              "disc": torch_names.to_torch({"params": state.d_params, "batch_stats": state.d_stats}, 1, LATEST)}
  for name, state_dict in expected.items():
    exported = safetensors.numpy.load_file(tmp_path / "torch" / f"{name}.safetensors")
    assert sorted(exported) == sorted(state_dict)
    for key, value in state_dict.items():
      assert (exported[key].dtype, exported[key].tobytes()) == (value.dtype, value.tobytes()), key
    assert all(exported[key] == LATEST for key in exported if key.endswith("num_batches_tracked"))
  # convert reads them back into the old run's generator, bitwise.
  torch_import.convert(tmp_path / "torch" / "gen.safetensors", tmp_path / "converted",
                       torch_disc=tmp_path / "torch" / "disc.safetensors", image_size=32)
  converted = load_generator(tmp_path / "converted")
  assert_same_leaves(converted.g_params, state.g_params)
  assert_same_leaves(converted.g_stats, state.g_stats)
