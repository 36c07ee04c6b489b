"""The jit-compiled Pix2Pix step.

The step follows the original's update order: fake = G(x) once (one dropout mask, one update of
G's BatchNorm statistics); D is updated on 0.5·(BCE(D(x, y), 1) + BCE(D(x, sg(fake)), 0)) with the
real and fake calls threading D's statistics in that order; then G is updated on
BCE(D'(x, fake), 1) + λ·L1(fake, y) against the updated D'. Everything is data-parallel (`mesh`): the
batch is sharded over the `data` axis, the state is replicated and donated, BatchNorm sees the
global batch.

Beyond the original, by the recipe: the GAN loss kind (`losses`), summed over D's scales; the
feature-matching loss, for which D' also sees (x, y) in G's pass, before (x, fake), its statistics
threaded in that order; and after G's update, its EMA with decay min(decay, (1 + t) / (10 + t)) at
step t (the warm-up of tf.train.ExponentialMovingAverage's `num_updates`, so that short runs average
trained weights rather than the initial ones), applied to parameters and BatchNorm statistics alike.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from sar2optical.model import losses
from sar2optical.training import mesh as mesh_lib
from sar2optical.training.recipe import Recipe
from sar2optical.training.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


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
    return losses.discriminator_loss(recipe.gan_loss, real_logits, fake_logits), d_stats

  (loss_d, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt_state = recipe.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  def g_loss_fn(fake):
    if recipe.lambda_feat_match:
      logits, new_d_stats, matching = feature_matched(recipe, d_params, d_stats, x, y, fake)
    else:
      (logits, new_d_stats), matching = discriminate(d_params, d_stats, fake), jnp.zeros(())
    gan = losses.generator_gan_loss(recipe.gan_loss, logits)
    l1 = losses.l1_loss(fake, y)
    loss = gan + recipe.lambda_l1 * l1
    if recipe.lambda_feat_match:
      loss = loss + recipe.lambda_feat_match * matching
    return loss, (gan, l1, matching, new_d_stats)

  (loss_g, (loss_g_gan, loss_g_l1, loss_g_fm, d_stats)), fake_grad = jax.value_and_grad(
      g_loss_fn, has_aux=True)(fake)
  (g_grads,) = generator_vjp(fake_grad)
  g_updates, g_opt_state = recipe.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  finite = jnp.all(jnp.isfinite(jnp.stack([loss_d, loss_g, optax.global_norm(d_grads), optax.global_norm(g_grads)])))
  step = state.step + 1
  nonfinite_step = jnp.where((state.nonfinite_step == 0) & ~finite, step, state.nonfinite_step)
  new_state = state.replace(step=step, g_params=g_params, g_stats=g_stats, d_params=d_params, d_stats=d_stats,
                            g_opt_state=g_opt_state, d_opt_state=d_opt_state, nonfinite_step=nonfinite_step,
                            g_ema=averaged(recipe, state, g_params, g_stats))
  metrics = {"loss_D": loss_d, "loss_G": loss_g, "loss_G_GAN": loss_g_gan, "loss_G_L1": loss_g_l1}
  if recipe.lambda_feat_match:
    metrics["loss_G_feat_match"] = loss_g_fm
  return new_state, metrics


def feature_matched(recipe: Recipe, d_params: Any, d_stats: Any, x: jax.Array, y: jax.Array,
                    fake: jax.Array) -> tuple[Any, Any, jax.Array]:
  """D's logits for (x, fake), its statistics after (x, y) then (x, fake), and the feature-matching loss."""
  def features(d_stats, optical):
    logits, updates = recipe.discriminator.apply({"params": d_params, "batch_stats": d_stats}, x, optical,
                                                train=True, mutable=["batch_stats", "intermediates"])
    return logits, updates["batch_stats"], jax.tree.leaves(updates["intermediates"])

  _, d_stats, real_features = features(d_stats, y)
  logits, d_stats, fake_features = features(d_stats, fake)
  taps = len(real_features) // len(losses.scales(logits))
  return logits, d_stats, losses.feature_matching_loss(fake_features, real_features, taps)


def averaged(recipe: Recipe, state: TrainState, g_params: Any, g_stats: Any) -> Any:
  """The state's `g_ema` moved towards G's new variables (None without an average); see the module docstring."""
  if state.g_ema is None:
    return None
  t = state.step.astype(jnp.float32)
  decay = jnp.minimum(recipe.ema_decay, (1.0 + t) / (10.0 + t))
  return jax.tree.map(lambda average, new: decay * average + (1.0 - decay) * new, state.g_ema,
                      {"params": g_params, "batch_stats": g_stats})


def jit_train_step(recipe: Recipe, mesh: jax.sharding.Mesh) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
  """The compiled step: state replicated and donated, batch sharded over the data axis."""
  return jax.jit(functools.partial(train_step, recipe=recipe),
                 in_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharded(mesh)),
                 out_shardings=(mesh_lib.replicated(mesh), mesh_lib.replicated(mesh)),
                 donate_argnums=0)
