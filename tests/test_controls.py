"""The controls of the distortion-perception trade-off in training: the adversarial weight (0: L1 only, no D),
the low-frequency L2, G starting at the mean training colour, G's width; each trains and resumes bitwise."""

import dataclasses
import functools
import json
import shutil

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import safetensors.numpy
from conftest import load_pair, make_workdir, saved_state, spread_generator, spread_state, tiny_config

from sar2optical.configs import fields
from sar2optical.core.errors import CheckpointError, ConfigError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import resolve, sources
from sar2optical.interop import torch_export, torch_import, torch_names
from sar2optical.model import losses, networks
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import loop
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib
from sar2optical.training import step as step_lib

#: Every control on: no D (λ_GAN 0), the low-frequency L2 over 4×4 windows, G at the mean colour, half width.
CONTROLS = {"loss.lambda_gan": 0.0, "loss.lambda_lowfreq": 10.0, "loss.lowfreq_pool": 4,
            "model.init_output_mean": True, "model.ngf": 32}


@pytest.mark.parametrize("overrides, fragment", [
    ({"loss.lambda_gan": -1.0}, "config.loss.lambda_gan"),
    ({"loss.lambda_lowfreq": -0.5}, "config.loss.lambda_lowfreq"),
    ({"loss.lowfreq_pool": 0}, "config.loss.lowfreq_pool"),
    ({"loss.lambda_lowfreq": 1.0, "loss.lowfreq_pool": 5}, "config.loss.lowfreq_pool"),  # 32 is no multiple of 5
    ({"model.ngf": 0}, "config.model.ngf"),
])
def test_bad_control_values_are_named(overrides, fragment):
  with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
    fields.validate(tiny_config("somewhere", **overrides))


def test_defaults_are_the_original():
  """The default config's recipe is the original's, and its generator has the original's 8 levels of widths."""
  config = fields.default_config()
  recipe = recipe_lib.make_recipe(config, PixelSpec())
  assert (recipe.lambda_gan, recipe.lambda_lowfreq, recipe.init_output_mean) == (1.0, 0.0, False)
  assert recipe.uses_discriminator
  shapes = jax.eval_shape(lambda: recipe.generator.init(jax.random.PRNGKey(0), jnp.zeros((1, 256, 256, 1)),
                                                        train=False))
  original = (64, 128, 256, 512, 512, 512, 512, 512)
  assert [shapes["params"][f"enc{i + 1}"]["conv"]["kernel"].shape[-1] for i in range(8)] == list(original)
  assert [shapes["params"][f"dec{i}"]["up"]["kernel"].shape[2] for i in range(1, 9)] == [*original[-2::-1], 64]
  assert sum(leaf.size for leaf in jax.tree.leaves(shapes["params"])) == 54_539_779  # the original's count


def test_half_width_generator_has_the_expected_kernels():
  shapes = jax.eval_shape(lambda: networks.UNetGenerator(levels=5, ngf=32).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), train=False))["params"]
  assert [shapes[f"enc{i}"]["conv"]["kernel"].shape for i in range(1, 6)] == [
      (4, 4, 1, 32), (4, 4, 32, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 256)]  # capped at 8·32
  assert [shapes[f"dec{i}"]["up"]["kernel"].shape for i in range(1, 6)] == [  # (kh, kw, out, in)
      (4, 4, 256, 256), (4, 4, 128, 512), (4, 4, 64, 256), (4, 4, 32, 128), (4, 4, 32, 64)]
  assert shapes["head"]["kernel"].shape == (3, 3, 32, 3)


def test_lowfreq_loss_equals_numpy():
  rng = np.random.default_rng(0)
  fake, real = rng.uniform(-1, 1, (2, 2, 8, 8, 3)).astype(np.float32)
  def pooled(x):
    return x.astype(np.float64).reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4))
  expected = np.mean((pooled(fake) - pooled(real)) ** 2)
  np.testing.assert_allclose(losses.lowfreq_loss(jnp.asarray(fake), jnp.asarray(real), 4), expected, rtol=1e-5)


def test_without_gan_the_step_is_the_l1_step_and_leaves_d_alone():
  """λ_GAN 0: G moves along the gradient of λ_L1·L1 alone (seen through SGD with rate 1, where Adam's first step
  would amplify rounding); D's parameters, statistics and optimizer state stay as they were."""
  config = tiny_config("x", **{"loss.lambda_gan": 0.0, "model.levels": 2, "model.ngf": 16})
  recipe, state = spread_state(config)
  recipe = dataclasses.replace(recipe, g_optimizer=optax.sgd(1.0))
  state = state.replace(g_opt_state=recipe.g_optimizer.init(state.g_params))
  assert not recipe.uses_discriminator
  optical = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  batch = {"sar": optical[..., :1].copy(), "optical": optical}

  def l1_loss(g_params):
    x, y = recipe.pixels.to_model(batch["sar"]), recipe.pixels.to_model(batch["optical"])
    fake = recipe.generator.apply({"params": g_params, "batch_stats": state.g_stats}, x, train=True,
                                  rngs={"dropout": jax.random.fold_in(state.rng, state.step)}, mutable=["batch_stats"])
    return config.loss.lambda_l1 * losses.l1_loss(fake[0], y)
  gradient = jax.jit(jax.grad(l1_loss))(state.g_params)
  new_state, metrics = jax.jit(functools.partial(step_lib.train_step, recipe=recipe))(state, batch)
  jax.tree.map(lambda old, new, grad: np.testing.assert_allclose(old - new, grad, rtol=1e-4, atol=1e-6),
               state.g_params, new_state.g_params, gradient)
  jax.tree.map(np.testing.assert_array_equal, (new_state.d_params, new_state.d_stats, new_state.d_opt_state),
               (state.d_params, state.d_stats, state.d_opt_state))
  assert float(metrics["loss_D"]) == float(metrics["loss_G_GAN"]) == 0.0
  np.testing.assert_allclose(metrics["loss_G"], config.loss.lambda_l1 * metrics["loss_G_L1"], rtol=1e-6)


def numpy_mean_colour(root, pairs) -> np.ndarray:
  """The mean over `pairs` of each optical image's mean RGB, in the model range [-1, 1]."""
  images = [load_pair(root, pair, None, 1)["optical"].astype(np.float64) for pair in pairs]
  return np.mean([image.mean(axis=(0, 1)) for image in images], axis=0) * 2 / 255 - 1


def test_the_mean_colour_is_numpys(demo_root):
  pairs = pairs_lib.find_pairs(demo_root)
  colour, count = loop.mean_colour(sources.FolderSource(demo_root, pairs), PixelSpec(), 0, False)
  assert count == len(pairs)  # all of them: fewer than 1,000
  np.testing.assert_allclose(colour, numpy_mean_colour(demo_root, pairs), atol=1e-6)


def test_a_generator_started_at_a_colour_outputs_it_everywhere():
  """At step 0 (before any update), in eval and train mode, whatever the rest of the network holds."""
  generator = spread_generator(tiny_config("unused", **CONTROLS))
  colour = np.array([-0.6, 0.1, 0.45], np.float32)
  variables = {"params": state_lib.started_at_colour(generator.g_params, colour), "batch_stats": generator.g_stats}
  sar = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)

  @jax.jit
  def outputs(variables):
    return (generator.network.apply(variables, sar, train=False),
            generator.network.apply(variables, sar, train=True, rngs={"dropout": jax.random.PRNGKey(1)},
                                    mutable=["batch_stats"])[0])
  for output in outputs(variables):
    np.testing.assert_allclose(output, np.broadcast_to(colour, output.shape), atol=1e-6)


@pytest.fixture(scope="module")
def controls_run(demo_root, tmp_path_factory):
  """A run with every control, 4 steps straight (checkpoints at 2 and 4), and one resumed from its step 2."""
  root = tmp_path_factory.mktemp("controls")
  config = tiny_config(demo_root, num_train_steps=4, checkpoint_every_steps=2, log_every_steps=1,
                       sample_every_steps=4, eval_every_steps=0, keep_checkpoints=3, **CONTROLS)
  loop.train(config, root / "straight")
  shutil.copytree(root / "straight", root / "resumed")
  shutil.rmtree(root / "resumed" / "checkpoints" / "4")
  loop.train(config, root / "resumed")
  return root, config


def test_every_control_trains_and_resumes_bitwise(controls_run, demo_root):
  root, config = controls_run
  straight, resumed = saved_state(root / "straight"), saved_state(root / "resumed")
  assert int(straight.step) == int(resumed.step) == 4 and int(straight.nonfinite_step) == 0
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)
  assert straight.g_params["head"]["kernel"].shape == (3, 3, 32, 3)
  assert np.any(straight.g_params["head"]["kernel"])  # it learned from its zero start
  training_pairs = resolve.resolve(config.data, root / "straight", seed=config.seed, record=False).source("train")
  start = np.arctanh(numpy_mean_colour(demo_root, [training_pairs[i] for i in range(len(training_pairs))]))
  assert np.abs(start).max() > 0.1  # far from the zero bias of the usual start: the run began at the colour
  np.testing.assert_allclose(straight.g_params["head"]["bias"], start, atol=4 * 2 * config.optimizer.learning_rate)
  # D never ran: its BatchNorm statistics are the initial ones (mean 0, variance 1), its Adam state all zeros.
  for path, value in flax.traverse_util.flatten_dict(straight.d_stats).items():
    np.testing.assert_array_equal(value, 1.0 if path[-1] == "var" else 0.0)
  assert not any(np.any(leaf) for leaf in jax.tree.leaves(straight.d_opt_state))
  logged = [json.loads(line) for line in (root / "straight" / "metrics.jsonl").read_text().splitlines()]
  losses_logged = [entry for entry in logged if "loss_G_lowfreq" in entry]
  assert len(losses_logged) == 4 and all(entry["loss_D"] == 0.0 for entry in losses_logged)


def test_other_widths_are_refused_by_torch_export_and_convert(tmp_path):
  workdir = make_workdir(tmp_path / "run", **{"model.ngf": 32})
  with pytest.raises(ConfigError, match=r"config\.model\.ngf is 32") as error:
    torch_export.export_torch(workdir, tmp_path / "torch")
  assert "\n" not in str(error.value) and not (tmp_path / "torch").exists()
  generator = spread_generator(tiny_config("unused", **{"model.ngf": 32}))
  safetensors.numpy.save_file(torch_names.to_torch({"params": generator.g_params, "batch_stats": generator.g_stats}),
                              tmp_path / "gen.safetensors")
  with pytest.raises(CheckpointError, match=r"config\.model\.ngf") as error:
    torch_import.convert(tmp_path / "gen.safetensors", tmp_path / "converted")
  assert "\n" not in str(error.value)


def test_other_widths_export_to_onnx():
  """ONNX graphs are built from the variables' shapes: a half-width G exports and runs as ours."""
  pytest.importorskip("onnxruntime", reason="onnxruntime (test dependency) is not installed")
  from test_onnx_export import assert_equal_to_ours  # pylint: disable=g-import-not-at-top (needs onnx)

  from sar2optical.interop import onnx_graph  # pylint: disable=g-import-not-at-top (the onnx extra)
  generator = spread_generator(tiny_config("unused", **{"model.ngf": 32}))
  sar = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
  assert_equal_to_ours(generator, onnx_graph.onnx_model(generator), sar)
