"""The generator exported as serialized StableHLO, run by the standalone loader beside it."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, make_workdir
from PIL import Image

from sar2optical.core.errors import ConfigError
from sar2optical.inference.restore import load_generator
from sar2optical.interop import stablehlo
from sar2optical.model.pixels import PixelSpec

# Runs a script with the project's model code and torch made unimportable (`import flax` raises ImportError).
_WITHOUT_PROJECT = ("import runpy, sys; sys.modules.update(dict.fromkeys(['sar2optical', 'flax', 'optax', 'orbax', "
                    "'torch'])); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def run_without_project(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", _WITHOUT_PROJECT, *args], capture_output=True, text=True,
                        timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})


@pytest.mark.parametrize("in_channels, upsampling", [(1, "none"), (3, "bilinear")])
def test_exported_output_equals_in_process(tmp_path, in_channels, upsampling):
  workdir = make_workdir(tmp_path / "run", in_channels, upsampling)
  artifact = stablehlo.export_workdir(workdir, tmp_path / "out" / "generator.jax", platforms=("cpu",))
  generator = load_generator(workdir)
  loader = {}
  exec(compile((tmp_path / "out" / stablehlo.LOADER_NAME).read_text(), stablehlo.LOADER_NAME, "exec"), loader)
  exported = loader["load"](artifact)
  rng = np.random.default_rng(0)
  in_process = jax.jit(stablehlo.translate_fn(generator))
  for batch in (1, 3):  # one artifact, any batch size
    sar = rng.integers(0, 256, (batch, 32, 32, in_channels), dtype=np.uint8)
    translated = exported(sar)
    assert translated.dtype == np.uint8 and translated.shape == (batch, 32, 32, 3)
    np.testing.assert_array_equal(translated, in_process(sar))
    # predict.py's path (float output, rounded on the host) differs only where float error meets a .5.
    predicted = generator.pixels.to_uint8(generator(sar))
    assert np.mean((predicted == 0) | (predicted == 255)) < 0.1  # outputs spread, not saturated
    difference = np.abs(translated.astype(int) - predicted)
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3
  with pytest.raises(ValueError, match=r"expected uint8 SAR of shape \(batch, 32, 32"):
    exported(np.zeros((1, 64, 64, in_channels), np.uint8))
  assert exported.step == 5


def test_cli_export_runs_without_the_project(tmp_path):
  workdir = make_workdir(tmp_path / "run", 1, "none")
  artifact = tmp_path / "out" / "generator.jax"
  result = subprocess.run([sys.executable, "-m", "sar2optical.commands.export", f"--workdir={workdir}", f"--output={artifact}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  spec = json.loads(pathlib.Path(f"{artifact}.json").read_text())
  assert spec["platforms"] == ["cpu", "cuda", "tpu"] and spec["pixels"] == PixelSpec().to_dict()
  assert (spec["image_size"], spec["in_channels"], spec["step"], spec["mode"]) == (32, 1, 5, "eval")
  sar = np.random.default_rng(0).integers(0, 256, (48, 40), dtype=np.uint8)
  Image.fromarray(sar).save(tmp_path / "sar.png")
  result = run_without_project(str(artifact.parent / stablehlo.LOADER_NAME), str(artifact), str(tmp_path / "sar.png"),
                               str(tmp_path / "rgb.png"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "is 40x48 pixels; the model learned tiles of 32x32" in result.stderr  # one tile: another ground pixel
  with Image.open(tmp_path / "rgb.png") as rgb:
    assert rgb.mode == "RGB" and rgb.size == (40, 48)
  generator = load_generator(workdir)
  resized = np.asarray(Image.fromarray(sar).resize((32, 32), Image.BILINEAR))[None, :, :, None]
  translated = np.asarray(jax.jit(stablehlo.translate_fn(generator))(resized))[0]
  expected = Image.fromarray(translated).resize((40, 48), Image.BILINEAR)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "rgb.png")), np.asarray(expected))


def test_unknown_platform_is_named(tmp_path):
  with pytest.raises(ConfigError, match="--platforms: expected some of cpu, cuda, rocm, tpu, got gpu"):
    stablehlo.export_workdir(tmp_path / "nowhere", tmp_path / "generator.jax", platforms=("gpu",))
