"""Pix2Pix networks in Flax linen, equal to the PyTorch SAR2Optical model.

Layout is NHWC. Module names mirror the PyTorch state_dict (`enc1` ↔ `encoder.enc1`, `dec3` ↔
`decoder.dec3`, `head`, discriminator `block0` ↔ `model.model.0`), so `interop.torch_names` maps one onto
the other by name. Nothing here knows about data, training or checkpoints, nor how a convolution is
computed: `Conv` and `ConvTranspose4x4` call `sar2optical.model.conv`, which picks the form per platform.

Beyond the original (each off by default, and then absent from the variables): spectral
normalisation of the PatchGAN's convolutions (Miyato et al. 2018; its power-iteration vectors live in
`batch_stats` beside BatchNorm's, so they are saved and threaded like them), and several PatchGANs
on the input at 1, 1/2, 1/4 of its size (`MultiScaleDiscriminator`, pix2pixHD of Wang et al. 2018).
Every PatchGAN block sows its output in the `intermediates` collection, read by the feature-matching loss.
"""

from collections.abc import Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from sar2optical.model import conv as conv_ops

#: The deepest U-Net: the original's 8 levels (at 256², its bottleneck is 1×1).
MAX_LEVELS = 8
Upsampling = Literal["none", "nearest", "bilinear"]

conv_init = nn.initializers.normal(stddev=0.02)
Dtype = Any  # a computation dtype: jnp.float32, or jnp.bfloat16 for mixed precision


def unet_widths(levels: int, ngf: int = 64) -> tuple[int, ...]:
  """Encoder widths min(ngf·2^i, 8·ngf) of levels i < `levels`; ngf 64 gives the original's 64, 128, 256, 512, 512, …"""
  return tuple(min(ngf * 2**i, 8 * ngf) for i in range(levels))


def norm_scale_init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """BatchNorm scale ~ N(1, 0.02), as the original initialises it."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class Conv(nn.Module):
  """A square convolution with `nn.Conv`'s parameters ("kernel" HWIO, optional "bias"), run by `conv.conv`."""
  features: int
  size: int
  stride: int = 1
  padding: int = 1
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", conv_init, (self.size, self.size, x.shape[-1], self.features))
    y = conv_ops.conv(x.astype(self.dtype), kernel.astype(self.dtype), self.stride, conv_ops.symmetric(self.padding))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class BatchNorm(nn.Module):
  """BatchNorm with PyTorch's semantics.

  Training normalises with the biased batch variance but updates the running variance with the
  unbiased one (`var * n / (n - 1)`), as `torch.nn.BatchNorm2d` does; Flax's built-in uses the
  biased variance for both. `momentum` is PyTorch's (weight of the new batch).
  Under `jax.jit` with a batch sharded over devices the statistics are those of the global batch.
  Statistics and normalisation run in float32 whatever the input's dtype; the output has the input's.
  """
  momentum: float = 0.1
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dtype = x.dtype
    x = x.astype(jnp.float32)
    features = x.shape[-1]
    scale = self.param("scale", norm_scale_init, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    if train:
      axes = tuple(range(x.ndim - 1))
      count = x.size // features
      mean = jnp.mean(x, axes)
      var = jnp.mean(jnp.square(x - mean), axes)
      if not self.is_initializing():
        m = self.momentum
        running_mean.value = (1 - m) * running_mean.value + m * mean
        running_var.value = (1 - m) * running_var.value + m * var * (count / max(count - 1, 1))
    else:
      mean, var = running_mean.value, running_var.value
    return ((x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias).astype(dtype)


def conv_layer(conv: "Conv", x: jax.Array, spectral_norm: bool, train: bool) -> jax.Array:
  """`conv(x)`, with its kernel divided by its spectral norm (one power iteration, updated in training) if asked."""
  return nn.SpectralNorm(conv)(x, update_stats=train) if spectral_norm else conv(x)


class DownBlock(nn.Module):
  """Conv 4×4 (stride 2, pad 1) → [BatchNorm] → LeakyReLU(0.2); the conv has a bias only without norm."""
  features: int
  use_norm: bool = True
  stride: int = 2
  dtype: Dtype = jnp.float32
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = Conv(self.features, 4, self.stride, use_bias=not self.use_norm, dtype=self.dtype, name="conv")
    x = conv_layer(conv, x, self.spectral_norm, train)
    if self.use_norm:
      x = BatchNorm(name="norm")(x, train)
    return nn.leaky_relu(x, 0.2)


class ConvTranspose4x4(nn.Module):
  """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1, no bias) with parameter "kernel".

  The kernel is stored as Flax's transposed layout (kh, kw, out, in), i.e. PyTorch's
  (in, out, kh, kw) permuted. Run by `conv.conv_transpose4x4`, in `accelerator_form` off the CPU.
  """
  features: int
  dtype: Dtype = jnp.float32
  accelerator_form: conv_ops.AcceleratorForm = "dilated"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", conv_init, (4, 4, self.features, x.shape[-1])).astype(self.dtype)
    return conv_ops.conv_transpose4x4(x.astype(self.dtype), kernel, self.accelerator_form)


class UpBlock(nn.Module):
  """×2 up-convolution (no bias) → BatchNorm → [Dropout] → ReLU.

  `upsampling="none"` is ConvTranspose 4×4 stride 2 pad 1; "nearest"/"bilinear" resize ×2 and
  apply a 3×3 conv, as the original's upsampling variant.
  """
  features: int
  dropout_rate: float = 0.0
  upsampling: Upsampling = "none"
  dtype: Dtype = jnp.float32
  accelerator_form: conv_ops.AcceleratorForm = "dilated"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, dropout: bool | None = None) -> jax.Array:
    """`dropout` (default: `train`) switches dropout apart from BatchNorm's mode (Monte Carlo dropout at inference)."""
    if self.upsampling == "none":
      x = ConvTranspose4x4(self.features, self.dtype, self.accelerator_form, name="up")(x)
    else:
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), method=self.upsampling)
      x = Conv(self.features, 3, use_bias=False, dtype=self.dtype, name="conv")(x)
    x = BatchNorm(name="norm")(x, train)
    if self.dropout_rate > 0:
      x = nn.Dropout(self.dropout_rate, deterministic=not (train if dropout is None else dropout))(x)
    return nn.relu(x)


class UNetGenerator(nn.Module):
  """U-Net generator with skips: `levels` down blocks, mirrored up blocks, Conv 3×3 head → tanh.

  Decoder block i < L outputs the width of encoder level L-1-i and is followed by
  concat(skip, output); block L maps to `ngf` channels. Encoder widths are `unet_widths(levels, ngf)`
  (`ngf` 64: the original's). Dropout sits on the innermost
  min(3, L-1) decoder blocks. The input size must be a multiple of 2**levels. Parameters are
  float32; `dtype` is the computation dtype (bfloat16 for mixed precision); the output is float32.
  `accelerator_form` is the transposed convolutions' form off the CPU (`conv.conv_transpose4x4`):
  the same function and parameters, a different computation; `bench/gpu_speed.py` measures both.
  """
  levels: int = 8
  out_channels: int = 3
  upsampling: Upsampling = "none"
  dropout_rate: float = 0.5
  dtype: Dtype = jnp.float32
  accelerator_form: conv_ops.AcceleratorForm = "dilated"
  ngf: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, dropout: bool | None = None) -> jax.Array:
    """`train`: BatchNorm's batch statistics (and their update); `dropout`: dropout on, by default when `train`."""
    widths = unet_widths(self.levels, self.ngf)
    skips = []
    for i, width in enumerate(widths):
      x = DownBlock(width, use_norm=i > 0, dtype=self.dtype, name=f"enc{i + 1}")(x, train)
      skips.append(x)
    x = skips[-1]
    for i in range(1, self.levels + 1):
      width = widths[self.levels - 1 - i] if i < self.levels else self.ngf
      rate = self.dropout_rate if i <= min(3, self.levels - 1) else 0.0
      x = UpBlock(width, rate, self.upsampling, self.dtype, self.accelerator_form, name=f"dec{i}")(x, train, dropout)
      if i < self.levels:
        x = jnp.concatenate([skips[self.levels - 1 - i], x], axis=-1)
    x = Conv(self.out_channels, 3, dtype=self.dtype, name="head")(x)
    return jnp.tanh(x.astype(jnp.float32))


class PatchDiscriminator(nn.Module):
  """PatchGAN on concat(SAR, optical): C64 (no norm) C128 C256 … C512 (stride 1) → Conv 4×4 to logits.

  With `layers=3` this is the 70×70 PatchGAN: 30×30 logits at 256². Logits are float32. Each
  block n's output is sown as `intermediates/features<n>` (kept only when that collection is mutable).
  """
  layers: int = 3
  features: int = 64
  dtype: Dtype = jnp.float32
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, sar: jax.Array, optical: jax.Array, train: bool) -> jax.Array:
    x = jnp.concatenate([sar, optical], axis=-1)
    widths = [self.features * min(2**n, 8) for n in range(self.layers + 1)]
    for n, width in enumerate(widths):
      x = DownBlock(width, use_norm=n > 0, stride=2 if n < self.layers else 1, dtype=self.dtype,
                    spectral_norm=self.spectral_norm, name=f"block{n}")(x, train)
      self.sow("intermediates", f"features{n}", x)
    x = conv_layer(Conv(1, 4, dtype=self.dtype, name="final"), x, self.spectral_norm, train)
    return x.astype(jnp.float32)


def half_size(x: jax.Array) -> jax.Array:
  """pix2pixHD's downsampling between discriminator scales: AvgPool2d(3, stride 2, pad 1, count_include_pad=False)."""
  return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=False)


class MultiScaleDiscriminator(nn.Module):
  """`scales` PatchGANs (`scale0`, `scale1`, …), scale i on the input downsampled i times: a tuple of logits."""
  scales: int = 2
  layers: int = 3
  dtype: Dtype = jnp.float32
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, sar: jax.Array, optical: jax.Array, train: bool) -> tuple[jax.Array, ...]:
    logits = []
    for i in range(self.scales):
      if i:
        sar, optical = half_size(sar), half_size(optical)
      logits.append(PatchDiscriminator(self.layers, dtype=self.dtype, spectral_norm=self.spectral_norm,
                                       name=f"scale{i}")(sar, optical, train))
    return tuple(logits)


class PixelDiscriminator(nn.Module):
  """The 1×1 "pixel" discriminator of pix2pix: per-pixel real/fake logits (float32)."""
  features: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, sar: jax.Array, optical: jax.Array, train: bool) -> jax.Array:
    x = jnp.concatenate([sar, optical], axis=-1)
    x = nn.leaky_relu(nn.Conv(self.features, (1, 1), kernel_init=conv_init, dtype=self.dtype, name="conv0")(x), 0.2)
    x = nn.Conv(2 * self.features, (1, 1), use_bias=False, kernel_init=conv_init, dtype=self.dtype, name="conv1")(x)
    x = nn.leaky_relu(BatchNorm(name="norm1")(x, train), 0.2)
    x = nn.Conv(1, (1, 1), use_bias=False, kernel_init=conv_init, dtype=self.dtype, name="final")(x)
    return x.astype(jnp.float32)


def patch_logits_size(image_size: int, layers: int) -> int:
  """Side of the PatchGAN logit map for a square input (0 means the input is too small)."""
  size = image_size
  for _ in range(layers):
    size = (size + 2 - 4) // 2 + 1
  for _ in range(2):  # the stride-1 block and the final conv
    size = size + 2 - 4 + 1
  return max(size, 0)
