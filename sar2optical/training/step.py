"""The jit-compiled Pix2Pix step and the generator's forward pass.

The step follows the original's update order: fake = G(x) once (one dropout mask, one update of
G's BatchNorm statistics); D is updated on 0.5·(BCE(D(x, y), 1) + BCE(D(x, sg(fake)), 0)) with the
real and fake calls threading D's statistics in that order; then G is updated on
BCE(D'(x, fake), 1) + λ·L1(fake, y) against the updated D'. Everything is data-parallel (`mesh`): the
batch is sharded over the `data` axis, the state is replicated and donated, BatchNorm sees the
global batch.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from sar2optical import losses
from sar2optical.training import mesh as mesh_lib
from sar2optical.training.recipe import Recipe
from sar2optical.training.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def generate(recipe: Recipe, g_params: Any, g_stats: Any, sar: jax.Array, *, train: bool = False,
             dropout_rng: jax.Array | None = None) -> jax.Array:
  """Generator output in the model range for uint8 SAR; eval mode by default (running statistics)."""
  x = recipe.pixels.to_model(sar)
  rngs = {"dropout": dropout_rng} if train else {}
  out = recipe.generator.apply({"params": g_params, "batch_stats": g_stats}, x, train=train, rngs=rngs,
                              mutable=["batch_stats"] if train else False)
  return out[0] if train else out


def train_step(state: TrainState, batch: Batch, *, recipe: Recipe) -> tuple[TrainState, Metrics]:
  """One Pix2Pix update of D then G; `batch` holds uint8 `sar` and `optical`."""
  x = recipe.pixels.to_model(batch["sar"])
  y = recipe.pixels.to_model(batch["optical"])
  dropout_rng = jax.random.fold_in(state.rng, state.step)

  def generator_forward(g_params):
    fake, updates = recipe.generator.apply({"params": g_params, "batch_stats": state.g_stats}, x, train=True,
                                          rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    return fake, updates["batch_stats"]

  fake, generator_vjp, g_stats = jax.vjp(generator_forward, state.g_params, has_aux=True)

  def discriminate(d_params, d_stats, optical):
    logits, updates = recipe.discriminator.apply({"params": d_params, "batch_stats": d_stats}, x, optical,
                                                train=True, mutable=["batch_stats"])
    return logits, updates["batch_stats"]

  def d_loss_fn(d_params):
    real_logits, d_stats = discriminate(d_params, state.d_stats, y)
    fake_logits, d_stats = discriminate(d_params, d_stats, jax.lax.stop_gradient(fake))
    loss = 0.5 * (losses.gan_loss(real_logits, True) + losses.gan_loss(fake_logits, False))
    return loss, d_stats

  (loss_d, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt_state = recipe.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  def g_loss_fn(fake):
    logits, new_d_stats = discriminate(d_params, d_stats, fake)
    gan = losses.gan_loss(logits, True)
    l1 = losses.l1_loss(fake, y)
    return gan + recipe.lambda_l1 * l1, (gan, l1, new_d_stats)

  (loss_g, (loss_g_gan, loss_g_l1, d_stats)), fake_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = generator_vjp(fake_grad)
  g_updates, g_opt_state = recipe.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  finite = jnp.all(jnp.isfinite(jnp.stack([loss_d, loss_g, optax.global_norm(d_grads), optax.global_norm(g_grads)])))
  step = state.step + 1
  nonfinite_step = jnp.where((state.nonfinite_step == 0) & ~finite, step, state.nonfinite_step)
  new_state = state.replace(step=step, g_params=g_params, g_stats=g_stats, d_params=d_params, d_stats=d_stats,
                            g_opt_state=g_opt_state, d_opt_state=d_opt_state, nonfinite_step=nonfinite_step)
  metrics = {"loss_D": loss_d, "loss_G": loss_g, "loss_G_GAN": loss_g_gan, "loss_G_L1": loss_g_l1}
  return new_state, metrics


def jit_generate(recipe: Recipe) -> Callable[[Any, Any, jax.Array], jax.Array]:
  """The compiled eval-mode generator: (g_params, g_stats, uint8 SAR) → output in the model range."""
  return jax.jit(functools.partial(generate, recipe))


def jit_train_step(recipe: Recipe, mesh: jax.sharding.Mesh) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
  """The compiled step: state replicated and donated, batch sharded over the data axis."""
  return jax.jit(functools.partial(train_step, recipe=recipe),
                 in_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharded(mesh)),
                 out_shardings=(mesh_lib.replicated(mesh), mesh_lib.replicated(mesh)),
                 donate_argnums=0)
