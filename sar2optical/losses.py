"""Pix2Pix losses: BCE-with-logits GAN loss and L1, each a mean over all elements (as PyTorch's)."""

import jax
import jax.numpy as jnp
import optax


def gan_loss(logits: jax.Array, target_is_real: bool) -> jax.Array:
  """BCE with logits against an all-ones (real) or all-zeros (fake) target."""
  labels = jnp.full_like(logits, 1.0 if target_is_real else 0.0)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


def l1_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(prediction - target))
