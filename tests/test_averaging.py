"""Averaging at inference: the 8 flips and rotations (--tta) and K dropout samples (--samples), in the generator's
range, for predict.py, eval.py, the API and the web demo; off, one plain forward pass."""

import functools
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, make_workdir, spread_generator, tiny_config
from PIL import Image

import sar2optical
from sar2optical.core.errors import ConfigError
from sar2optical.model import generator as generator_lib
from sar2optical.model.generator import Averaging
from sar2optical.model.pixels import PixelSpec

SIZE = 16  # the tiny U-Net's tiles: 2 levels, dropout in its innermost decoder block
TINY = {"image_size": SIZE, "model.levels": 2}


class Pointwise(nn.Module):
  """1×1 convolutions only: every flip and rotation commutes with it (D4-equivariant) when dropout is off."""
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, dropout: bool | None = None) -> jax.Array:
    x = jnp.tanh(nn.Conv(8, (1, 1))(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not (train if dropout is None else dropout))(x)
    return jnp.tanh(nn.Conv(3, (1, 1))(x))


def pointwise(dropout_rate: float = 0.0) -> tuple[Pointwise, dict]:
  network = Pointwise(dropout_rate)
  return network, network.init(jax.random.PRNGKey(1), jnp.zeros((1, SIZE, SIZE, 1)), train=False)


@pytest.fixture(scope="module")
def sar() -> np.ndarray:
  """Two uint8 SAR tiles without any symmetry."""
  return np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 1), dtype=np.uint8)


@pytest.fixture(scope="module")
def unet():
  """A real tiny U-Net generator (2 levels at 16², dropout 0.5) with spread variables."""
  return spread_generator(tiny_config("unused", **TINY))


@pytest.fixture(scope="module")
def plain(unet):
  """The U-Net's compiled plain forward pass (eval mode, no averaging)."""
  return functools.partial(generator_lib.jit_forward(unet.network, unet.pixels), unet.g_params, unet.g_stats)


def test_averaging_says_what_it_costs_and_refuses_too_few_samples():
  assert not Averaging().on and Averaging().describe() == "off" and Averaging(True, 4).calls == 32
  assert Averaging(True, 4).describe() == ("mean over the 8 flips and rotations × 4 dropout samples "
                                           "(32 generator calls a tile)")
  with pytest.raises(ConfigError, match=r"^samples: .* at least 1, got 0$"):
    Averaging(samples=0)


def test_the_dihedral_mean_of_an_equivariant_network_is_its_output(sar):
  network, variables = pointwise()
  single = generator_lib.forward(network, PixelSpec())(variables["params"], {}, sar)
  averaged = generator_lib.forward(network, PixelSpec(), averaging=Averaging(dihedral=True))(
      variables["params"], {}, sar)
  np.testing.assert_allclose(averaged, single, atol=1e-6)


def test_samples_of_a_network_without_dropout_are_one_sample(sar):
  network, variables = pointwise(dropout_rate=0.0)
  single = generator_lib.forward(network, PixelSpec())(variables["params"], {}, sar)
  averaged = generator_lib.forward(network, PixelSpec(), averaging=Averaging(samples=3))(variables["params"], {}, sar)
  np.testing.assert_allclose(averaged, single, atol=1e-6)


def test_the_dihedral_mean_of_a_unet_undoes_each_flip_and_rotation(unet, plain, sar):
  expected = np.zeros((*sar.shape[:3], 3))
  for turns in range(4):
    for flip in (False, True):
      seen = np.rot90(sar[:, :, ::-1] if flip else sar, turns, axes=(1, 2))
      out = np.rot90(np.asarray(plain(np.ascontiguousarray(seen))), -turns, axes=(1, 2))
      expected += (out[:, :, ::-1] if flip else out) / 8
  averaged = generator_lib.forward(unet.network, unet.pixels, averaging=Averaging(dihedral=True))
  np.testing.assert_allclose(jax.jit(averaged)(unet.g_params, unet.g_stats, sar), expected, atol=1e-6)


def test_samples_are_the_mean_of_dropout_draws_with_their_documented_keys(unet, plain, sar):
  """Eval mode: running statistics, dropout on (Monte Carlo dropout); sample k keyed fold_in(PRNGKey(seed), k)."""
  seed, samples = 7, 3
  variables = {"params": unet.g_params, "batch_stats": unet.g_stats}
  draw = jax.jit(lambda key: unet.network.apply(variables, unet.pixels.to_model(sar), train=False, dropout=True,
                                                rngs={"dropout": key}))
  draws = [np.asarray(draw(jax.random.fold_in(jax.random.PRNGKey(seed), k))) for k in range(samples)]
  averaged = jax.jit(generator_lib.forward(unet.network, unet.pixels, "eval", seed, Averaging(samples=samples)))
  result = np.asarray(averaged(unet.g_params, unet.g_stats, sar))
  np.testing.assert_allclose(result, np.mean(draws, axis=0), atol=1e-6)
  assert np.abs(result - np.asarray(plain(sar))).max() > 1e-3
  assert np.abs(draws[0] - draws[1]).max() > 1e-3


@pytest.fixture(scope="module")
def workdir(demo_root, tmp_path_factory):
  """A tiny workdir (one checkpoint, step 5) whose data root is the demo set."""
  return make_workdir(tmp_path_factory.mktemp("averaging") / "run", **TINY, **{"data.root": str(demo_root)})


def run(script: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, capture_output=True, text=True,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=600)


def test_predict_writes_the_averaged_translation_of_the_api(workdir, sar, tmp_path):
  scene = np.random.default_rng(1).integers(0, 256, (23, 29), dtype=np.uint8)
  (tmp_path / "in").mkdir()
  Image.fromarray(scene).save(tmp_path / "in" / "scene.png")
  result = run("predict.py", f"--workdir={workdir}", f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}",
               "--tta", "--samples=2")
  assert result.returncode == 0, result.stderr[-3000:]
  translator = sar2optical.load(workdir, tta=True, samples=2)
  expected = translator.translate(scene)
  assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "scene.png")), expected)
  assert repr(translator).endswith("; averaging: mean over the 8 flips and rotations × 2 dropout samples "
                                   "(16 generator calls a tile)>")
  assert translator.generator.describe()["averaging"] == {"dihedral": True, "samples": 2}
  assert "averaging" not in sar2optical.load(workdir).generator.describe()  # what an export writes: unchanged


def test_eval_records_the_averaging_in_its_json_and_header(workdir, tmp_path):
  result = run("eval.py", f"--workdir={workdir}", "--split=all", "--tta", f"--output_json={tmp_path / 'm.json'}",
               f"--output_dir={tmp_path / 'eval'}", "--grid_pairs=0")
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((tmp_path / "m.json").read_text())["averaging"] == {"dihedral": True, "samples": 1}
  assert "averaging: mean over the 8 flips and rotations (8 generator calls a tile)" in result.stdout


def test_samples_below_one_is_one_line_and_exit_status_2(workdir):
  result = run("eval.py", f"--workdir={workdir}", "--samples=0")
  assert result.returncode == 2, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --samples: the dropout samples averaged must be at least 1, got 0")


def test_the_api_refuses_averaging_an_exported_artifact_and_too_few_samples(workdir, tmp_path):
  (tmp_path / "generator.jax").write_bytes(b"")
  with pytest.raises(ConfigError, match="without averaging"):
    sar2optical.load(tmp_path / "generator.jax", tta=True)
  with pytest.raises(ConfigError, match=r"^samples: "):
    sar2optical.load(workdir, samples=0)


def test_the_demo_page_says_what_it_averages(workdir):
  page = pytest.importorskip("sar2optical.web.page", reason="gradio (the [demo] extra) is not installed")
  about = page.About.of(workdir, sar2optical.load(workdir, tta=True))
  assert "each translated tile the mean over the 8 flips and rotations" in about.markdown()
  assert page.About.of(workdir, sar2optical.load(workdir)).averaging is None
