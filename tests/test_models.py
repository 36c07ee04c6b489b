"""The Flax networks against the PyTorch SAR2Optical reference: sizes, outputs, BatchNorm, one step."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import nhwc, randomise_running_stats, torch_state_dict

from sar2optical.configs import pix2pix
from sar2optical.interop import torch_names as torch_weights
from sar2optical.model import conv as conv_ops
from sar2optical.model import networks
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib
from sar2optical.training import step as step_lib


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def shapes(module, *inputs):
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs, train=False))


@pytest.mark.parametrize("in_channels, g_params, d_params", [(3, 54_541_827, 2_768_705), (1, 54_539_779, 2_766_657)])
def test_parameter_counts_equal_the_original(in_channels, g_params, d_params):
  sar = jnp.zeros((1, 256, 256, in_channels))
  optical = jnp.zeros((1, 256, 256, 3))
  assert count(shapes(networks.UNetGenerator(), sar)["params"]) == g_params
  assert count(shapes(networks.PatchDiscriminator(), sar, optical)["params"]) == d_params


@pytest.mark.parametrize("levels, size", [(8, 256), (7, 128), (6, 64), (3, 32), (4, 48)])
@pytest.mark.parametrize("upsampling", ["none", "bilinear"])
def test_output_shapes(levels, size, upsampling):
  sar = jnp.zeros((2, size, size, 1))
  out = jax.eval_shape(lambda: networks.UNetGenerator(levels=levels, upsampling=upsampling).init_with_output(
      jax.random.PRNGKey(0), sar, train=False)[0])
  assert out.shape == (2, size, size, 3)
  logits = jax.eval_shape(lambda: networks.PatchDiscriminator().init_with_output(
      jax.random.PRNGKey(0), sar, jnp.zeros((2, size, size, 3)), train=False)[0])
  assert logits.shape == (2, networks.patch_logits_size(size, 3), networks.patch_logits_size(size, 3), 1)
  assert networks.patch_logits_size(256, 3) == 30


@contextlib.contextmanager
def dilated_transposes():
  """While tracing in this context, every transposed conv takes the reference form on the CPU too: the
  input-dilated `lax.conv_transpose` differentiated by JAX ("dilated"). Other convolutions keep their forms."""
  traced = []
  def dilated(x, kernel):
    traced.append(x.shape)
    return conv_ops._lax_conv_transpose4x4(x, kernel)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(conv_ops, "_cpu_conv_transpose4x4", dilated)
    yield
  assert traced, "nothing was traced with the dilated form (a cached trace?)"


@pytest.mark.parametrize("batch", [1, 4])
def test_generator_forms_agree_in_eval_mode(batch):
  """The default (auto) generator equals the all-dilated one: same parameters, outputs within 1e-5."""
  sar = jax.random.uniform(jax.random.PRNGKey(1), (batch, 64, 64, 3), minval=-1, maxval=1)
  generator = networks.UNetGenerator(levels=6)
  variables = generator.init(jax.random.PRNGKey(0), sar, train=False)
  shift = lambda v: v + jax.random.uniform(jax.random.PRNGKey(2), v.shape, minval=0.1, maxval=0.5)
  variables = {**variables, "batch_stats": jax.tree.map(shift, variables["batch_stats"])}
  with dilated_transposes():
    expected = generator.apply(variables, sar, train=False)
  np.testing.assert_allclose(jax.jit(lambda v, x: generator.apply(v, x, train=False))(variables, sar), expected,
                             atol=1e-5)


def test_initialisation_follows_the_original():
  variables = networks.UNetGenerator(levels=4).init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), train=False)
  kernel = np.asarray(variables["params"]["enc2"]["conv"]["kernel"])
  scale = np.asarray(variables["params"]["enc2"]["norm"]["scale"])
  assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 1e-3
  assert abs(scale.mean() - 1.0) < 0.01 and 0.01 < scale.std() < 0.03
  assert not np.any(variables["params"]["enc1"]["conv"]["bias"])
  np.testing.assert_array_equal(variables["batch_stats"]["enc2"]["norm"]["var"], 1.0)


def test_batchnorm_updates_running_variance_unbiased():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 1, 1, 4))  # 2 values per channel: unbiased = 2 × biased
  variables = networks.BatchNorm().init(jax.random.PRNGKey(0), x, train=True)
  _, updates = networks.BatchNorm().apply(variables, x, train=True, mutable=["batch_stats"])
  unbiased = np.var(np.asarray(x).reshape(2, 4), axis=0, ddof=1)
  np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * unbiased, rtol=1e-6)


@pytest.mark.parametrize("levels, size, in_channels, upsampling", [
    (8, 256, 1, "none"), (8, 256, 3, "none"), (5, 64, 1, "nearest"), (5, 64, 3, "bilinear")])
def test_outputs_equal_pytorch_in_eval_mode(torch_reference, levels, size, in_channels, upsampling):
  import torch
  torch.manual_seed(0)
  gen = torch_reference.UnetGenerator(in_channels, 3, upsampling != "none", mode=upsampling if upsampling != "none"
                                      else "nearest", levels=levels)
  disc = torch_reference.PatchGAN(in_channels + 3)
  gen.apply(torch_reference.init_weights)
  disc.apply(torch_reference.init_weights)
  randomise_running_stats(torch, gen, disc)
  gen.eval(), disc.eval()
  x = torch.rand(2, in_channels, size, size) * 2 - 1
  y = torch.rand(2, 3, size, size) * 2 - 1
  with torch.no_grad():
    expected_fake = nhwc(gen(x))
    expected_logits = nhwc(disc(torch.cat([x, y], 1)))

  generator = networks.UNetGenerator(levels=levels, upsampling=upsampling)
  discriminator = networks.PatchDiscriminator()
  sar, optical = jnp.asarray(nhwc(x)), jnp.asarray(nhwc(y))
  g_vars = torch_weights.from_torch(torch_state_dict(gen), shapes(generator, sar))
  d_vars = torch_weights.from_torch(torch_state_dict(disc), shapes(discriminator, sar, optical), discriminator_layers=3)
  np.testing.assert_allclose(generator.apply(g_vars, sar, train=False), expected_fake, atol=1e-4)
  np.testing.assert_allclose(discriminator.apply(d_vars, sar, optical, train=False), expected_logits, atol=1e-4)


def test_torch_import_names_bad_keys(torch_reference):
  gen = torch_reference.UnetGenerator(1, 3, levels=3)
  state_dict = torch_state_dict(gen)
  state_dict["encoder.enc9.conv_block.0.weight"] = np.zeros(1)
  del state_dict["head.0.bias"]
  state_dict["encoder.enc1.conv_block.0.weight"] = np.zeros((64, 3, 4, 4))
  template = shapes(networks.UNetGenerator(levels=3), jnp.zeros((1, 32, 32, 1)))
  with pytest.raises(Exception) as error:
    torch_weights.from_torch(state_dict, template)
  message = str(error.value)
  for fragment in ("missing key head.0.bias", "unexpected key encoder.enc9.conv_block.0.weight",
                   "mis-shaped encoder.enc1.conv_block.0.weight"):
    assert fragment in message


def test_training_step_equals_pytorch(torch_reference):
  """One full Pix2Pix step (dropout off in both): losses, BatchNorm statistics and parameters agree."""
  import torch
  levels, size, batch = 5, 32, 2  # the bottleneck is 1×1: the unbiased variance is 2× the biased one
  torch.manual_seed(0)
  reference = torch_reference.Pix2Pix(1, 3, levels=levels)
  for m in reference.gen.modules():
    if isinstance(m, torch.nn.Dropout):
      m.p = 0.0
  reference.gen.train(), reference.disc.train()
  config = pix2pix.get_config()
  config.model.levels = levels
  config.model.dropout_rate = 0.0
  model = recipe_lib.make_recipe(config, PixelSpec())
  rng = np.random.default_rng(0)
  sar_u8 = rng.integers(0, 256, (batch, size, size, 1), dtype=np.uint8)
  optical_u8 = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  template = jax.eval_shape(lambda: state_lib.init_state(model, jax.random.PRNGKey(0), size, 1))
  g_vars = torch_weights.from_torch(torch_state_dict(reference.gen),
                                    {"params": template.g_params, "batch_stats": template.g_stats})
  d_vars = torch_weights.from_torch(torch_state_dict(reference.disc),
                                    {"params": template.d_params, "batch_stats": template.d_stats}, 3)
  state = state_lib.TrainState(
      step=jnp.zeros((), jnp.int32), g_params=g_vars["params"], g_stats=g_vars["batch_stats"],
      d_params=d_vars["params"], d_stats=d_vars["batch_stats"], g_opt_state=model.g_optimizer.init(g_vars["params"]),
      d_opt_state=model.d_optimizer.init(d_vars["params"]), rng=jax.random.PRNGKey(0),
      nonfinite_step=jnp.zeros((), jnp.int32))
  new_state, metrics = jax.jit(lambda s, b: step_lib.train_step(s, b, recipe=model))(
      state, {"sar": sar_u8, "optical": optical_u8})

  to_torch = lambda a: torch.from_numpy(np.asarray(PixelSpec().to_model(a)).transpose(0, 3, 1, 2).copy())
  # PyTorch's own kernels, not oneDNN's: oneDNN picks its convolution code by the CPU's instruction set, and on
  # some CPUs its float error alone exceeds these tolerances (running variances off by 1.4e-5 on an AMD EPYC).
  with torch.backends.mkldnn.flags(enabled=False):
    loss_d, loss_g = reference.train_step(to_torch(sar_u8), to_torch(optical_u8))
  np.testing.assert_allclose(metrics["loss_D"], loss_d.item(), rtol=1e-5)
  np.testing.assert_allclose(metrics["loss_G"], loss_g.item(), rtol=1e-5)
  g_after = torch_weights.from_torch(torch_state_dict(reference.gen),
                                     {"params": template.g_params, "batch_stats": template.g_stats})
  d_after = torch_weights.from_torch(torch_state_dict(reference.disc),
                                     {"params": template.d_params, "batch_stats": template.d_stats}, 3)
  for ours, theirs in [(new_state.g_stats, g_after["batch_stats"]), (new_state.d_stats, d_after["batch_stats"])]:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4), ours, theirs)
  # Adam's first step is ±lr wherever |gradient| >> eps, so a gradient within float error of 0 may
  # flip sign between frameworks (most often in enc5, whose BatchNorm sees 2 values per channel):
  # allow that for under 0.1% of weights, each off by at most 2·lr.
  ours = np.concatenate([np.ravel(x) for x in jax.tree.leaves((new_state.g_params, new_state.d_params))])
  theirs = np.concatenate([np.ravel(x) for x in jax.tree.leaves((g_after["params"], d_after["params"]))])
  difference = np.abs(ours - theirs)
  assert difference.max() <= 2 * 2e-4 * 1.01
  assert np.mean(difference > 1e-5) < 1e-3


def test_default_and_dilated_generators_train_alike():
  """A training step with the default forms (custom gradients) or the dilated one gives the same state."""
  config = pix2pix.get_config()
  config.model.levels = 3
  model = recipe_lib.make_recipe(config, PixelSpec())
  rng = np.random.default_rng(0)
  batch = {"sar": rng.integers(0, 256, (2, 32, 32, 1), dtype=np.uint8),
           "optical": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)}
  state = state_lib.init_state(model, jax.random.PRNGKey(0), 32, 1)
  step = lambda: jax.jit(lambda s, b: step_lib.train_step(s, b, recipe=model))(state, batch)  # a new trace each call
  finals = [step()]
  with dilated_transposes():
    finals.append(step())
  (state_a, metrics_a), (state_b, metrics_b) = finals
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), metrics_a, metrics_b)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), (state_a.g_stats, state_a.d_stats),
               (state_b.g_stats, state_b.d_stats))
  params = np.concatenate([np.ravel(np.abs(a - b)) for a, b in zip(jax.tree.leaves(state_a.g_params),
                                                                   jax.tree.leaves(state_b.g_params))])
  assert np.mean(params > 1e-5) < 1e-4 and params.max() <= 2 * 2e-4 * 1.01  # Adam's sign flips, as above
