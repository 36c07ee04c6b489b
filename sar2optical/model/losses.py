"""Pix2Pix losses, each a mean over all elements (as PyTorch's): GAN losses of three kinds, L1, feature matching,
and the squared error of local means (a low-frequency L2).

A discriminator's output is one logit map, or a tuple of them (one per scale); a GAN loss is summed
over scales, as pix2pixHD's, so one map gives exactly the single-scale loss.

  bce    BCE with logits, the original's (Goodfellow et al. 2014, non-saturating for G)
  lsgan  least squares against 1 / 0 (Mao et al. 2017; pix2pixHD's and CycleGAN's default)
  hinge  D: relu(1 − real) + relu(1 + fake); G: −fake (Lim & Ye 2017; SNGAN, BigGAN)
"""

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import optax

GanLoss = Literal["bce", "lsgan", "hinge"]
GAN_LOSSES: tuple[str, ...] = ("bce", "lsgan", "hinge")
Logits = jax.Array | Sequence[jax.Array]


def scales(logits: Logits) -> tuple[jax.Array, ...]:
  """The logit maps of a discriminator's output, one per scale."""
  return tuple(logits) if isinstance(logits, (tuple, list)) else (logits,)


def gan_loss(logits: jax.Array, target_is_real: bool) -> jax.Array:
  """BCE with logits against an all-ones (real) or all-zeros (fake) target."""
  labels = jnp.full_like(logits, 1.0 if target_is_real else 0.0)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


def _discriminator_term(kind: GanLoss, logits: jax.Array, real: bool) -> jax.Array:
  if kind == "bce":
    return gan_loss(logits, real)
  if kind == "lsgan":
    return jnp.mean(jnp.square(logits - (1.0 if real else 0.0)))
  return jnp.mean(jax.nn.relu(1.0 - logits if real else 1.0 + logits))


def discriminator_loss(kind: GanLoss, real_logits: Logits, fake_logits: Logits) -> jax.Array:
  """0.5 · (loss on real + loss on fake), summed over scales; `bce` is the original's D loss."""
  return 0.5 * sum(_discriminator_term(kind, r, True) + _discriminator_term(kind, f, False)
                   for r, f in zip(scales(real_logits), scales(fake_logits)))


def generator_gan_loss(kind: GanLoss, fake_logits: Logits) -> jax.Array:
  """G's adversarial loss on D's logits for its output, summed over scales; `bce` is the original's."""
  if kind == "hinge":
    return sum(-jnp.mean(f) for f in scales(fake_logits))
  return sum(_discriminator_term(kind, f, True) for f in scales(fake_logits))


def l1_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(prediction - target))


def lowfreq_loss(prediction: jax.Array, target: jax.Array, pool: int) -> jax.Array:
  """mean((avgpool(prediction) − avgpool(target))²), average pooling over `pool`×`pool` windows at stride `pool`.

  PSNR rewards the mean of what could be there, L1 its median: this term pulls each window's mean colour
  towards the target's. Sides must be multiples of `pool`.
  """
  def pooled(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return jnp.mean(x.reshape(b, h // pool, pool, w // pool, pool, c), axis=(2, 4))
  return jnp.mean(jnp.square(pooled(prediction) - pooled(target)))


def feature_matching_loss(fake_features: Sequence[jax.Array], real_features: Sequence[jax.Array],
                          taps_per_scale: int) -> jax.Array:
  """pix2pixHD's discriminator feature-matching loss, before its weight λ_feat.

  Σ over scales D_i and taps j of (1 / num_D) · (4 / taps_per_scale) · L1(fake_ij, sg(real_ij)): the
  same pairs in the same order in both sequences.
  """
  num_scales = len(real_features) // taps_per_scale
  total = sum(l1_loss(f, jax.lax.stop_gradient(r)) for f, r in zip(fake_features, real_features, strict=True))
  return total * (4.0 / taps_per_scale) / num_scales
