"""Training state, the jit-compiled Pix2Pix step, and the device mesh it runs on.

The step follows the original's update order: fake = G(x) once (one dropout mask, one update of
G's BatchNorm statistics); D is updated on 0.5·(BCE(D(x, y), 1) + BCE(D(x, sg(fake)), 0)) with the
real and fake calls threading D's statistics in that order; then G is updated on
BCE(D'(x, fake), 1) + λ·L1(fake, y) against the updated D'. Everything is data-parallel: the batch
is sharded over a `data` mesh axis, the state is replicated, BatchNorm sees the global batch.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from sar2optical import losses, models
from sar2optical.pixels import PixelSpec

if TYPE_CHECKING:  # configs are ml_collections.ConfigDicts; read by attribute only, so not imported here
  import ml_collections

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
DATA_AXIS = "data"


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs besides the data iterator: both networks and optimizers."""
  step: jax.Array
  g_params: Any
  g_stats: Any
  d_params: Any
  d_stats: Any
  g_opt_state: Any
  d_opt_state: Any
  rng: jax.Array
  # The first step whose losses or gradients were NaN or Inf, 0 while all were finite: kept on the
  # device so that checking it costs no host sync per step (the trainer reads it at log and
  # checkpoint boundaries, and never saves a state where it is set).
  nonfinite_step: jax.Array


@dataclasses.dataclass(frozen=True)
class Pix2Pix:
  """The static parts of training: networks, optimizers, loss weight and pixel mapping."""
  generator: nn.Module
  discriminator: nn.Module
  g_optimizer: optax.GradientTransformation
  d_optimizer: optax.GradientTransformation
  lambda_l1: float
  pixels: PixelSpec


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def make_generator(model_config: "ml_collections.ConfigDict") -> models.UNetGenerator:
  return models.UNetGenerator(levels=model_config.levels, upsampling=model_config.upsampling,
                              dropout_rate=model_config.dropout_rate, dtype=COMPUTE_DTYPES[model_config.dtype])


def make_discriminator(model_config: "ml_collections.ConfigDict") -> nn.Module:
  dtype = COMPUTE_DTYPES[model_config.dtype]
  if model_config.disc == "pixel":
    return models.PixelDiscriminator(dtype=dtype)
  return models.PatchDiscriminator(layers=model_config.disc_layers, dtype=dtype)


def learning_rate_schedule(config: "ml_collections.ConfigDict") -> optax.Schedule:
  """Constant, or constant then linear decay to 0 over the rest of training (the paper's)."""
  lr = config.optimizer.learning_rate
  if config.schedule.name == "constant":
    return optax.constant_schedule(lr)
  decay_start = int(config.num_train_steps * config.schedule.decay_start_fraction)
  return optax.join_schedules(
      [optax.constant_schedule(lr),
       optax.linear_schedule(lr, 0.0, max(config.num_train_steps - decay_start, 1))], [decay_start])


def make_pix2pix(config: "ml_collections.ConfigDict", pixels: PixelSpec) -> Pix2Pix:
  def adam():
    return optax.adam(learning_rate_schedule(config), b1=config.optimizer.b1, b2=config.optimizer.b2, eps=1e-8)
  return Pix2Pix(make_generator(config.model), make_discriminator(config.model), adam(), adam(),
                 float(config.loss.lambda_l1), pixels)


def init_state(model: Pix2Pix, rng: jax.Array, image_size: int, in_channels: int) -> TrainState:
  """Fresh state: N(0, 0.02) conv kernels, N(1, 0.02) BatchNorm scales, zero biases."""
  g_key, d_key, rng = jax.random.split(rng, 3)
  sar = jnp.zeros((1, image_size, image_size, in_channels), jnp.float32)
  optical = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  g_vars = model.generator.init(g_key, sar, train=False)
  d_vars = model.discriminator.init(d_key, sar, optical, train=False)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_vars["params"], g_stats=g_vars.get("batch_stats", {}),
      d_params=d_vars["params"], d_stats=d_vars.get("batch_stats", {}),
      g_opt_state=model.g_optimizer.init(g_vars["params"]),
      d_opt_state=model.d_optimizer.init(d_vars["params"]),
      rng=rng, nonfinite_step=jnp.zeros((), jnp.int32))


def generate(model: Pix2Pix, g_params: Any, g_stats: Any, sar: jax.Array, *, train: bool = False,
             dropout_rng: jax.Array | None = None) -> jax.Array:
  """Generator output in the model range for uint8 SAR; eval mode by default (running statistics)."""
  x = model.pixels.to_model(sar)
  rngs = {"dropout": dropout_rng} if train else {}
  out = model.generator.apply({"params": g_params, "batch_stats": g_stats}, x, train=train, rngs=rngs,
                              mutable=["batch_stats"] if train else False)
  return out[0] if train else out


def train_step(state: TrainState, batch: Batch, *, model: Pix2Pix) -> tuple[TrainState, Metrics]:
  """One Pix2Pix update of D then G; `batch` holds uint8 `sar` and `optical`."""
  x = model.pixels.to_model(batch["sar"])
  y = model.pixels.to_model(batch["optical"])
  dropout_rng = jax.random.fold_in(state.rng, state.step)

  def generator_forward(g_params):
    fake, updates = model.generator.apply({"params": g_params, "batch_stats": state.g_stats}, x, train=True,
                                          rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    return fake, updates["batch_stats"]

  fake, generator_vjp, g_stats = jax.vjp(generator_forward, state.g_params, has_aux=True)

  def discriminate(d_params, d_stats, optical):
    logits, updates = model.discriminator.apply({"params": d_params, "batch_stats": d_stats}, x, optical,
                                                train=True, mutable=["batch_stats"])
    return logits, updates["batch_stats"]

  def d_loss_fn(d_params):
    real_logits, d_stats = discriminate(d_params, state.d_stats, y)
    fake_logits, d_stats = discriminate(d_params, d_stats, jax.lax.stop_gradient(fake))
    loss = 0.5 * (losses.gan_loss(real_logits, True) + losses.gan_loss(fake_logits, False))
    return loss, d_stats

  (loss_d, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt_state = model.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  def g_loss_fn(fake):
    logits, new_d_stats = discriminate(d_params, d_stats, fake)
    gan = losses.gan_loss(logits, True)
    l1 = losses.l1_loss(fake, y)
    return gan + model.lambda_l1 * l1, (gan, l1, new_d_stats)

  (loss_g, (loss_g_gan, loss_g_l1, d_stats)), fake_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = generator_vjp(fake_grad)
  g_updates, g_opt_state = model.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  finite = jnp.all(jnp.isfinite(jnp.stack([loss_d, loss_g, optax.global_norm(d_grads), optax.global_norm(g_grads)])))
  step = state.step + 1
  nonfinite_step = jnp.where((state.nonfinite_step == 0) & ~finite, step, state.nonfinite_step)
  new_state = state.replace(step=step, g_params=g_params, g_stats=g_stats, d_params=d_params, d_stats=d_stats,
                            g_opt_state=g_opt_state, d_opt_state=d_opt_state, nonfinite_step=nonfinite_step)
  metrics = {"loss_D": loss_d, "loss_G": loss_g, "loss_G_GAN": loss_g_gan, "loss_G_L1": loss_g_l1}
  return new_state, metrics


def make_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over `devices` (default: every device of every process)."""
  devices = list(devices) if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch(local_batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> Batch:
  """This process's slice of the global batch → global arrays sharded over the data axis."""
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def create_state(model: Pix2Pix, mesh: jax.sharding.Mesh, seed: int, image_size: int,
                 in_channels: int) -> TrainState:
  """A fresh state, initialised directly into its replicated sharding."""
  init = functools.partial(init_state, model, image_size=image_size, in_channels=in_channels)
  return jax.jit(init, out_shardings=replicated(mesh))(jax.random.PRNGKey(seed))


def abstract_state(model: Pix2Pix, mesh: jax.sharding.Mesh, image_size: int, in_channels: int) -> TrainState:
  """Shapes, dtypes and shardings of the state, for restoring a checkpoint onto `mesh`."""
  init = functools.partial(init_state, model, image_size=image_size, in_channels=in_channels)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  sharding = replicated(mesh)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def jit_generate(model: Pix2Pix) -> Callable[[Any, Any, jax.Array], jax.Array]:
  """The compiled eval-mode generator: (g_params, g_stats, uint8 SAR) → output in the model range."""
  return jax.jit(functools.partial(generate, model))


def jit_train_step(model: Pix2Pix, mesh: jax.sharding.Mesh) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
  """The compiled step: state replicated and donated, batch sharded over the data axis."""
  return jax.jit(functools.partial(train_step, model=model),
                 in_shardings=(replicated(mesh), data_sharded(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)),
                 donate_argnums=0)
