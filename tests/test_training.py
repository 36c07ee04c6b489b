"""Training: config checks, learning on real pairs, 1 vs 8 devices, and exact resume."""

import json
import logging
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, SEN12_ROOT, load_pair, requires_sen12, saved_state, tiny_config

from sar2optical.configs import fields
from sar2optical.core.errors import ConfigError
from sar2optical.data import pairs as pairs_lib
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import log as log_lib
from sar2optical.training import loop
from sar2optical.training import mesh as mesh_lib
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib
from sar2optical.training import step as step_lib


@pytest.mark.parametrize("name, value, fragment", [
    ("image_size", 100, "config.image_size"),
    ("model.upsampling", "cubic", "config.model.upsampling"),
    ("model.in_channels", 2, "config.model.in_channels"),
    ("batch_size", 1, "config.batch_size"),
    ("batch_size", 0, "config.batch_size"),
    ("model.levels", 9, "config.model.levels"),
    ("model.disc_layers", 5, "config.model.disc_layers"),
    ("optimizer.b1", 1.5, "config.optimizer.b1"),
    ("schedule.name", "cosine", "config.schedule.name"),
    ("data.root", "", "config.data.root"),
])
def test_bad_config_values_are_named(name, value, fragment):
  config = tiny_config("somewhere", **{name: value})
  with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
    fields.validate(config)


def test_batch_must_split_over_devices():
  with pytest.raises(ConfigError, match="config.batch_size"):
    fields.validate(tiny_config("x", batch_size=6), num_data_shards=4)


def test_linear_decay_schedule_reaches_zero():
  config = tiny_config("x", **{"schedule.name": "linear_decay", "num_train_steps": 100})
  schedule = recipe_lib.learning_rate_schedule(config)
  assert schedule(0) == schedule(49) == pytest.approx(2e-4)
  assert schedule(75) == pytest.approx(1e-4)
  assert schedule(100) == pytest.approx(0.0)


@requires_sen12
def test_overfits_two_real_pairs():
  """L1 falls by more than half within a few dozen steps on two real SEN1-2 pairs."""
  config = tiny_config(SEN12_ROOT, image_size=64, **{"model.levels": 4})
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  loaded = [load_pair(SEN12_ROOT, p, 64, 1) for p in (pairs[0], pairs[-1])]
  batch = {k: np.stack([p[k] for p in loaded]) for k in ("sar", "optical")}
  model = recipe_lib.make_recipe(config, PixelSpec())
  mesh = mesh_lib.make_mesh()
  state = state_lib.create_state(model, mesh, 0, 64, 1)
  step = step_lib.jit_train_step(model, mesh)
  l1 = []
  for _ in range(40):
    state, metrics = step(state, mesh_lib.global_batch(batch, mesh))
    l1.append(metrics["loss_G_L1"])
  l1 = np.asarray(jax.device_get(l1))
  assert np.all(np.isfinite(l1))
  assert l1[-5:].mean() < 0.5 * l1[:3].mean(), l1


def test_eight_devices_match_one():
  """The same step on a 1-device and an 8-device mesh (simulated CPUs) gives the same state."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": str(REPO)}
  result = subprocess.run([sys.executable, str(REPO / "tests" / "helpers" / "multidevice_step.py")], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["devices"] == 8
  sgd, adam = report["sgd"], report["adam"]
  # SGD is linear in the gradient: 3 steps agree everywhere.
  assert sgd["max_rel_losses"] <= 1e-5 and sgd["max_abs_batch_stats"] <= 1e-5 and sgd["max_abs_params"] <= 1e-5
  # Adam: the gradient sum runs in another order on 8 devices, and where a gradient is float noise
  # around 0 (yet above eps) Adam makes it a full ±lr step; every other weight agrees within 1e-5.
  assert adam["max_rel_losses"] <= 1e-5 and adam["max_abs_batch_stats"] <= 1e-5
  assert adam["fraction_params_over_1e-5"] < 1e-4
  assert adam["max_abs_params"] <= 2 * 2e-4 * 1.01


def test_resume_is_bitwise_identical(demo_root, tmp_path):
  """N steps straight == N/2 steps, a restart in the same workdir, then N/2 more."""
  config = tiny_config(demo_root, num_train_steps=6, checkpoint_every_steps=3, log_every_steps=2,
                       sample_every_steps=6)
  loop.train(config, tmp_path / "straight")
  loop.train(tiny_config(demo_root, num_train_steps=3, checkpoint_every_steps=3, log_every_steps=2,
                            sample_every_steps=6), tmp_path / "resumed")
  loop.train(config, tmp_path / "resumed")
  straight, resumed = saved_state(tmp_path / "straight"), saved_state(tmp_path / "resumed")
  assert int(straight.step) == int(resumed.step) == 6
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)
  assert (tmp_path / "resumed" / "split.json").read_text() == (tmp_path / "straight" / "split.json").read_text()
  lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [2, 4, 6]
  assert {"loss_D", "loss_G", "loss_G_GAN", "loss_G_L1", "steps_per_second"} <= set(json.loads(lines[-1]))
  assert list((tmp_path / "straight" / "samples").glob("*.png"))
  assert list((tmp_path / "straight" / "tensorboard").glob("events.out.tfevents.*"))


def test_bfloat16_compute_trains_with_float32_state():
  """Mixed precision: bf16 activations, float32 parameters, optimizer moments and losses; L1 falls."""
  config = tiny_config("x", **{"model.dtype": "bfloat16", "model.dropout_rate": 0.0})
  model = recipe_lib.make_recipe(config, PixelSpec())
  mesh = mesh_lib.make_mesh()
  state = state_lib.create_state(model, mesh, 0, 32, 1)
  rng = np.random.default_rng(0)
  optical = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  batch = mesh_lib.global_batch({"sar": optical[..., :1].copy(), "optical": optical}, mesh)
  step = step_lib.jit_train_step(model, mesh)
  l1 = []
  for _ in range(30):
    state, metrics = step(state, batch)
    l1.append(metrics["loss_G_L1"])
  assert {leaf.dtype for leaf in jax.tree.leaves((state.g_params, state.d_params, state.g_opt_state,
                                                  state.d_opt_state)) if leaf.ndim} == {np.dtype("float32")}
  assert metrics["loss_G"].dtype == np.float32
  l1 = np.asarray(jax.device_get(l1))
  assert np.all(np.isfinite(l1)) and l1[-3:].mean() < 0.7 * l1[:3].mean(), l1


def test_the_log_says_what_the_silent_minutes_are_and_that_no_validation_runs(demo_root, tmp_path, caplog):
  config = tiny_config(demo_root, num_train_steps=2, checkpoint_every_steps=2, log_every_steps=1,
                       sample_every_steps=100, eval_every_steps=100)
  with caplog.at_level(logging.INFO):
    loop.train(config, tmp_path / "run")
  assert "Listing the pairs under" in caplog.text
  assert re.search(r"Split train: \w+ \d+", caplog.text)
  assert "Compiling the train step" in caplog.text and re.search(r"Compiled and ran the first step in [\d.]+ s",
                                                                 caplog.text)
  assert "Validation: none in this run (every 100 steps, and the run ends at step 2)" in caplog.text


def test_sample_and_eval_grids_have_column_titles_and_row_labels_at_a_readable_size():
  rng = np.random.default_rng(0)
  rows = [(rng.integers(0, 256, (32, 32, 1), np.uint8), np.full((32, 32, 3), 128, np.uint8),
           np.full((32, 32, 3), 128, np.uint8)) for _ in range(2)]
  plain, labelled = log_lib.pair_grid(rows), log_lib.pair_grid(rows, ["grassland", ""])
  assert plain.shape == (22 + 2 * 128, 3 * 128, 3)  # a band of titles over 32² tiles enlarged 4×
  for column in range(3):  # each title is written in its column's band
    band = plain[:22, column * 128:(column + 1) * 128]
    assert (band < 100).any() and (band == 255).any()
  np.testing.assert_array_equal(plain[22:22 + 4, 128:], np.full((4, 256, 3), 128, np.uint8))  # the images below
  differs = np.any(plain != labelled, axis=-1)
  assert differs[22:22 + 30, :100].any() and not differs[22 + 128:].any()  # the first row's label only
