"""The jit-compiled Pix2Pix step.

The step follows the original's update order: fake = G(x) once (one dropout mask, one update of
G's BatchNorm statistics); D is updated on 0.5·(BCE(D(x, y), 1) + BCE(D(x, sg(fake)), 0)) with the
real and fake calls threading D's statistics in that order; then G is updated on
BCE(D'(x, fake), 1) + λ·L1(fake, y) against the updated D'. Everything is data-parallel (`mesh`): the
batch is sharded over the `data` axis, the state is replicated and donated, BatchNorm sees the
global batch.

Beyond the original, by the recipe: the GAN loss kind (`losses`), summed over D's scales, and its
weight λ_GAN (1: the original's); the feature-matching loss, for which D' also sees (x, y) in G's pass,
before (x, fake), its statistics threaded in that order; the low-frequency L2 of local means
(`losses.lowfreq_loss`), logged as `loss_G_lowfreq`; and after G's update, its EMA with decay
min(decay, (1 + t) / (10 + t)) at step t (the warm-up of tf.train.ExponentialMovingAverage's
`num_updates`, so that short runs average trained weights rather than the initial ones), applied to
parameters and BatchNorm statistics alike.

When G's loss reads no D (λ_GAN = 0 and no feature matching: pure regression, the pix2pix paper's "L1
only"), the step never calls D: its parameters, statistics and optimizer state pass through unchanged
(so checkpoints keep their shape and a later run may switch D on), and `loss_D` and `loss_G_GAN` are
reported as 0 so that logs keep their columns.
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
  """One Pix2Pix update of D (if `recipe.uses_discriminator`) then G; `batch` holds uint8 `sar` and `optical`."""
  x = recipe.pixels.to_model(batch["sar"])
  y = recipe.pixels.to_model(batch["optical"])
  dropout_rng = jax.random.fold_in(state.rng, state.step)

  def generator_forward(g_params):
    fake, updates = recipe.generator.apply({"params": g_params, "batch_stats": state.g_stats}, x, train=True,
                                          rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    return fake, updates["batch_stats"]

  fake, generator_vjp, g_stats = jax.vjp(generator_forward, state.g_params, has_aux=True)
  if recipe.uses_discriminator:  # static: a recipe without D compiles a step without it
    d_params, d_stats, d_opt_state, loss_d, d_grad_norm = discriminator_update(recipe, state, x, y, fake)
  else:
    d_params, d_stats, d_opt_state = state.d_params, state.d_stats, state.d_opt_state
    loss_d, d_grad_norm = jnp.zeros(()), jnp.zeros(())

  (loss_g, (terms, d_stats)), fake_grad = jax.value_and_grad(generator_loss, has_aux=True)(
      fake, recipe, d_params, d_stats, x, y)
  (g_grads,) = generator_vjp(fake_grad)
  g_updates, g_opt_state = recipe.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  finite = jnp.all(jnp.isfinite(jnp.stack([loss_d, loss_g, d_grad_norm, optax.global_norm(g_grads)])))
  step = state.step + 1
  nonfinite_step = jnp.where((state.nonfinite_step == 0) & ~finite, step, state.nonfinite_step)
  new_state = state.replace(step=step, g_params=g_params, g_stats=g_stats, d_params=d_params, d_stats=d_stats,
                            g_opt_state=g_opt_state, d_opt_state=d_opt_state, nonfinite_step=nonfinite_step,
                            g_ema=averaged(recipe, state, g_params, g_stats))
  return new_state, {"loss_D": loss_d, "loss_G": loss_g, **terms}


def discriminate(recipe: Recipe, d_params: Any, d_stats: Any, x: jax.Array, optical: jax.Array) -> tuple[Any, Any]:
  """D's logits for (x, optical) in train mode, and its statistics after that call."""
  logits, updates = recipe.discriminator.apply({"params": d_params, "batch_stats": d_stats}, x, optical,
                                              train=True, mutable=["batch_stats"])
  return logits, updates["batch_stats"]


def discriminator_update(recipe: Recipe, state: TrainState, x: jax.Array, y: jax.Array,
                         fake: jax.Array) -> tuple[Any, Any, Any, jax.Array, jax.Array]:
  """D's params, statistics and optimizer state after its update on (x, y) then (x, sg(fake)); its loss and
  gradient norm."""
  def d_loss_fn(d_params):
    real_logits, d_stats = discriminate(recipe, d_params, state.d_stats, x, y)
    fake_logits, d_stats = discriminate(recipe, d_params, d_stats, x, jax.lax.stop_gradient(fake))
    return losses.discriminator_loss(recipe.gan_loss, real_logits, fake_logits), d_stats

  (loss_d, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt_state = recipe.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
  return optax.apply_updates(state.d_params, d_updates), d_stats, d_opt_state, loss_d, optax.global_norm(d_grads)


def generator_loss(fake: jax.Array, recipe: Recipe, d_params: Any, d_stats: Any, x: jax.Array,
                   y: jax.Array) -> tuple[jax.Array, tuple[Metrics, Any]]:
  """G's loss on its output; its terms (the metrics `loss_G_*`) and D's statistics after G's pass.

  λ_GAN·GAN + λ_L1·L1 [+ λ_fm·feature matching] [+ λ_lowfreq·low-frequency L2], the bracketed terms only
  when weighted; without D (`recipe.uses_discriminator` False) the GAN term is 0 and D is not called.
  """
  if recipe.lambda_feat_match:
    logits, d_stats, matching = feature_matched(recipe, d_params, d_stats, x, y, fake)
  elif recipe.uses_discriminator:
    logits, d_stats = discriminate(recipe, d_params, d_stats, x, fake)
  gan = losses.generator_gan_loss(recipe.gan_loss, logits) if recipe.uses_discriminator else jnp.zeros(())
  terms = {"loss_G_GAN": gan, "loss_G_L1": losses.l1_loss(fake, y)}
  loss = recipe.lambda_gan * gan + recipe.lambda_l1 * terms["loss_G_L1"]
  if recipe.lambda_feat_match:
    terms["loss_G_feat_match"] = matching
    loss = loss + recipe.lambda_feat_match * matching
  if recipe.lambda_lowfreq:
    terms["loss_G_lowfreq"] = losses.lowfreq_loss(fake, y, recipe.lowfreq_pool)
    loss = loss + recipe.lambda_lowfreq * terms["loss_G_lowfreq"]
  return loss, (terms, d_stats)


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
