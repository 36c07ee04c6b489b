"""The recipe's options beyond the original: GAN loss kinds, feature matching, multi-scale and spectrally
normalised discriminators, the generator's EMA; each trains, resumes bitwise and is what inference uses."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import saved_state, tiny_config

from sar2optical.configs import fields, pix2pix
from sar2optical.core.errors import ConfigError
from sar2optical.inference.restore import load_generator
from sar2optical.interop import torch_export as torch_export
from sar2optical.model import losses
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import loop
from sar2optical.training import mesh as mesh_lib
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib
from sar2optical.training import step as step_lib

#: Every option on at once, at sizes where two PatchGAN scales of 2 layers still have outputs at 32².
ALL_OPTIONS = {"model.disc_scales": 2, "model.disc_layers": 2, "model.disc_spectral_norm": True,
               "model.ema_decay": 0.9, "loss.lambda_feat_match": 10.0, "loss.gan": "hinge"}


def test_gan_losses_by_kind():
  real, fake = jnp.array([[2.0, -1.0]]), jnp.array([[0.5, -3.0]])
  assert losses.discriminator_loss("bce", real, fake) == 0.5 * (losses.gan_loss(real, True)
                                                                + losses.gan_loss(fake, False))
  assert losses.generator_gan_loss("bce", fake) == losses.gan_loss(fake, True)
  np.testing.assert_allclose(losses.discriminator_loss("lsgan", real, fake), 0.5 * ((1 + 4) / 2 + (0.25 + 9) / 2))
  np.testing.assert_allclose(losses.generator_gan_loss("lsgan", fake), (0.25 + 16) / 2)
  np.testing.assert_allclose(losses.discriminator_loss("hinge", real, fake), 0.5 * ((0 + 2) / 2 + (1.5 + 0) / 2))
  np.testing.assert_allclose(losses.generator_gan_loss("hinge", fake), 1.25)
  # Scales add up.
  np.testing.assert_allclose(losses.discriminator_loss("hinge", (real, real), (fake, fake)),
                             2 * losses.discriminator_loss("hinge", real, fake))


def test_defaults_are_the_original_recipe():
  """configs/pix2pix.py keeps the original's networks and losses: one PatchGAN without spectral norm, no EMA."""
  config = pix2pix.get_config()
  recipe = recipe_lib.make_recipe(config, PixelSpec())
  assert (recipe.gan_loss, recipe.lambda_feat_match, recipe.ema_decay) == ("bce", 0.0, 0.0)
  shapes = jax.eval_shape(lambda: state_lib.init_state(recipe, jax.random.PRNGKey(0), 256, 1))
  assert shapes.g_ema is None
  assert sorted(shapes.d_params) == ["block0", "block1", "block2", "block3", "final"]
  assert sorted(shapes.d_stats) == ["block1", "block2", "block3"]  # BatchNorm's only
  assert torch_export.discriminator_unlike_original(config.model) == ""


@pytest.mark.parametrize("overrides, fragment", [
    ({"loss.gan": "wgan"}, "config.loss.gan"),
    ({"model.disc_scales": 4}, "config.model.disc_scales"),
    ({"model.disc_scales": 3}, "config.model.disc_scales"),  # the 8² scale has no 3-layer PatchGAN output
    ({"model.ema_decay": 1.0}, "config.model.ema_decay"),
    ({"loss.lambda_feat_match": -1.0}, "config.loss.lambda_feat_match"),
    ({"model.disc": "pixel", "model.disc_spectral_norm": True}, "config.model.disc_spectral_norm"),
])
def test_bad_option_values_are_named(overrides, fragment):
  with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
    fields.validate(tiny_config("somewhere", **overrides))


def test_few_scenes_variant_is_the_measured_lsgan_row():
  """configs/pix2pix.py:few_scenes is what the few-scene ablation chose (docs/few_scenes.md): LSGAN only."""
  config = pix2pix.get_config("few_scenes")
  expected = pix2pix.get_config()
  expected.loss.gan = "lsgan"
  assert config.to_dict() == expected.to_dict()
  config.data.root = "somewhere"
  fields.validate(config)


def test_accurate_variant_is_the_measured_regression_row():
  """configs/pix2pix.py:accurate is the accuracy end measured by leave-one-scene-out (docs/few_scenes.md)."""
  config = pix2pix.get_config("accurate")
  expected = pix2pix.get_config()
  expected.loss.lambda_gan, expected.model.init_output_mean, expected.model.ngf = 0.0, True, 32
  assert config.to_dict() == expected.to_dict()
  config.data.root = "somewhere"
  fields.validate(config)


def test_lsgan_trains_with_finite_losses():
  config = tiny_config("x", **{"loss.gan": "lsgan"})
  recipe = recipe_lib.make_recipe(config, PixelSpec())
  mesh = mesh_lib.make_mesh()
  state = state_lib.create_state(recipe, mesh, 0, 32, 1)
  optical = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  batch = mesh_lib.global_batch({"sar": optical[..., :1].copy(), "optical": optical}, mesh)
  state, metrics = step_lib.jit_train_step(recipe, mesh)(state, batch)
  assert all(np.isfinite(float(value)) for value in metrics.values()), metrics
  assert int(state.nonfinite_step) == 0


@pytest.fixture(scope="module")
def options_run(demo_root, tmp_path_factory):
  """A run with every option, 4 steps straight (checkpoints at 2 and 4), and one resumed from its step 2."""
  root = tmp_path_factory.mktemp("options")
  config = tiny_config(demo_root, num_train_steps=4, checkpoint_every_steps=2, log_every_steps=1,
                       sample_every_steps=4, keep_checkpoints=3, **ALL_OPTIONS)
  loop.train(config, root / "straight")
  shutil.copytree(root / "straight", root / "resumed")
  shutil.rmtree(root / "resumed" / "checkpoints" / "4")
  loop.train(config, root / "resumed")
  return root


def test_every_option_trains_and_resumes_bitwise(options_run):
  straight, resumed = saved_state(options_run / "straight"), saved_state(options_run / "resumed")
  assert int(straight.step) == int(resumed.step) == 4 and int(straight.nonfinite_step) == 0
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)
  assert sorted(straight.d_params) == ["scale0", "scale1"]
  sigma = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(straight.d_stats) if "sigma" in str(path)]
  assert len(sigma) == 2 * 4 and all(value != 1.0 for value in sigma)  # updated by the power iteration
  ema_leaves = jax.tree.leaves(straight.g_ema)
  assert len(ema_leaves) == len(jax.tree.leaves((straight.g_params, straight.g_stats)))
  assert all(np.all(np.isfinite(leaf)) for leaf in ema_leaves)


def test_predict_and_eval_use_the_ema_weights(options_run):
  state = saved_state(options_run / "straight")
  generator = load_generator(options_run / "straight")
  jax.tree.map(np.testing.assert_array_equal, (generator.g_params, generator.g_stats),
               (state.g_ema["params"], state.g_ema["batch_stats"]))
  assert not np.array_equal(state.g_ema["params"]["head"]["kernel"], state.g_params["head"]["kernel"])


def test_torch_export_keeps_the_ema_generator_only(options_run):
  generator, networks = torch_export.state_dicts(options_run / "straight")
  assert sorted(networks) == ["gen"]
  np.testing.assert_array_equal(networks["gen"]["head.0.bias"], np.asarray(generator.g_params["head"]["bias"]))
