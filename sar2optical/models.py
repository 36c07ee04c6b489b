"""Pix2Pix networks in Flax linen, equal to the PyTorch SAR2Optical model.

Layout is NHWC. Module names mirror the PyTorch state_dict (`enc1` ↔ `encoder.enc1`, `dec3` ↔
`decoder.dec3`, `head`, discriminator `block0` ↔ `model.model.0`), so `torch_weights` maps one onto
the other by name. Nothing here knows about data, training or checkpoints.
"""

import functools
from collections.abc import Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

#: Encoder widths of the original 8-level U-Net; L levels keep the first L.
UNET_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)
Upsampling = Literal["none", "nearest", "bilinear"]
TransposeMethod = Literal["auto", "matmul", "subpixel", "dilated"]
Padding = tuple[tuple[int, int], tuple[int, int]]

conv_init = nn.initializers.normal(stddev=0.02)
Dtype = Any  # a computation dtype: jnp.float32, or jnp.bfloat16 for mixed precision


def norm_scale_init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """BatchNorm scale ~ N(1, 0.02), as the original initialises it."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _pad(p: int) -> Padding:
  return ((p, p), (p, p))


_DIMS = ("NHWC", "HWIO", "NHWC")


def _lax_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=_DIMS)


def _on_cpu() -> bool:
  """Whether XLA:CPU compiles this trace. The hand-written forms of `conv` and `conv_transpose4x4` were
  measured faster there only; GPUs and TPUs get XLA's own convolutions (cuDNN, the TPU compiler)."""
  return jax.default_backend() == "cpu"


def _taps(x: jax.Array, size: int, stride: int, padding: Padding, out_hw: tuple[int, int]) -> list[jax.Array]:
  """For each kernel tap (ky, kx), row-major, the padded input pixels it meets: each (B, Ho, Wo, C)."""
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  ho, wo = out_hw
  return [xp[:, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
          for ky in range(size) for kx in range(size)]


def _patches(x: jax.Array, size: int, stride: int, padding: Padding, out_hw: tuple[int, int]) -> jax.Array:
  """The input each output pixel reads, (B, Ho, Wo, size·size·C), in the HWIO kernel's (ky, kx, c) order."""
  return jnp.concatenate(_taps(x, size, stride, padding, out_hw), axis=-1)


def _conv_out_hw(x: jax.Array, size: int, stride: int, padding: Padding) -> tuple[int, int]:
  return tuple((n + sum(p) - size) // stride + 1 for n, p in zip(x.shape[1:3], padding))


def _at_most(pixels: Any, limit: int) -> bool:
  """`pixels <= limit` for a known pixel count; False for a symbolic one (a `jax.export` batch)."""
  return isinstance(pixels, int) and pixels <= limit


def _as_product(x: jax.Array, out_hw: tuple[int, int], features: int) -> bool:
  """Whether `conv` multiplies gathered patches: the batch has no more output pixels than output channels."""
  return _at_most(x.shape[0] * out_hw[0] * out_hw[1], features)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """`lax.conv_general_dilated` (NHWC, HWIO kernel), computed in the forms XLA:CPU runs fastest.

  Forward: one product of the gathered patches with the kernel when the batch has no more output
  pixels than output channels (the patches are then no larger than the kernel), else XLA's conv.
  Input gradient: the transposed product, `conv_transpose4x4` for the 4×4 stride-2 convs, else
  XLA's. Kernel gradient: one matrix product per tap (or, with few output channels, one product
  of shifted output gradients), several times faster on XLA:CPU than its weight-gradient conv.
  """
  size, _, channels, features = kernel.shape
  out_hw = _conv_out_hw(x, size, stride, padding)
  if not _as_product(x, out_hw, features):
    return _lax_conv(x, kernel, stride, padding)
  return jnp.dot(_patches(x, size, stride, padding, out_hw), kernel.reshape(size * size * channels, features))


def _conv_fwd(x, kernel, stride, padding):
  return conv(x, kernel, stride, padding), (x, kernel)


def _conv_bwd(stride, padding, residuals, dy):
  x, kernel = residuals
  size, _, channels, features = kernel.shape
  out_hw = dy.shape[1:3]
  if _as_product(x, out_hw, features):
    # (tap·in) × pixels, so that the kernel is the product's left operand as stored.
    d_patches = jnp.einsum("ko,bhwo->kbhw", kernel.reshape(-1, features), dy).transpose(1, 2, 3, 0)
    (dx,) = jax.vjp(lambda x: _patches(x, size, stride, padding, out_hw), x)[1](d_patches)
  elif (size, stride, padding) == (4, 2, _pad(1)) and x.shape[1:3] == (2 * out_hw[0], 2 * out_hw[1]):
    dx = conv_transpose4x4(dy, kernel)  # this conv's transpose, with the kernel as stored
  else:
    (dx,) = jax.vjp(lambda x: _lax_conv(x, kernel, stride, padding), x)[1](dy)
  if stride == 1 and 4 * features <= channels:
    # Shift the (narrower) output gradient instead of the input: one product for all taps.
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    (hp, wp), (ho, wo) = xp.shape[1:3], out_hw
    shifted = [jnp.pad(dy, ((0, 0), (ky, hp - ho - ky), (kx, wp - wo - kx), (0, 0)))
               for ky in range(size) for kx in range(size)]
    dk = jnp.einsum("bhwk,bhwi->ki", jnp.concatenate(shifted, axis=-1), xp)
  else:
    dk = jnp.stack([jnp.einsum("bhwo,bhwi->oi", dy, tap) for tap in _taps(x, size, stride, padding, out_hw)])
  dk = dk.reshape(size, size, features, channels).transpose(0, 1, 3, 2)
  return dx, dk.astype(kernel.dtype)


conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_transpose4x4(x: jax.Array, kernel: jax.Array, method: TransposeMethod = "auto") -> jax.Array:
  """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1) on NHWC; `kernel` is (kh, kw, out, in).

  Input pixel (m, n) adds x·kernel[ky, kx] to output pixel (2m - 1 + ky, 2n - 1 + kx).
  `method="matmul"`: one product of the input pixels with the whole kernel, then the overlapping
  4×4 footprints are added (no copy of the kernel: fastest while the batch has no more pixels than
  input channels). `"subpixel"`: output phase (a, b) of each 2×2 block is a 2×2 convolution of
  the input; the four run as one stride-1 convolution with 4× the output channels, then
  depth-to-space. `"auto"` picks between the two by that rule. The backward pass (shared) computes
  the input gradient as the stride-2 convolution with the kernel as stored, and the kernel gradient
  as one matrix product per tap.
  """
  b, h, w, channels = x.shape
  features = kernel.shape[2]
  if method == "matmul" or (method == "auto" and _at_most(b * h * w, channels)):
    # (tap, out) × pixels: the kernel is the product's left operand as stored; only x is transposed.
    p = jnp.einsum("yxoi,bhwi->yxobhw", kernel, x).transpose(3, 4, 5, 0, 1, 2)
    p = jnp.pad(p, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
    # Output row 2m + a sums input rows m + dy through kernel rows ky, for (dy, ky) in taps[a].
    taps = {0: ((0, 1), (-1, 3)), 1: ((0, 2), (1, 0))}
    phases = [[sum(p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, ky, kx] for dy, ky in taps[a] for dx, kx in taps[c])
               for c in (0, 1)] for a in (0, 1)]
  else:
    # Padded input rows (m + a, m + a + 1) feed output row 2m + a through kernel rows (3 - a, 1 - a),
    # i.e. rows (a, a + 2) of the flipped kernel; likewise for columns.
    k = kernel[::-1, ::-1].reshape(2, 2, 2, 2, features, channels).transpose(0, 2, 5, 1, 3, 4)
    y = _lax_conv(x, k.reshape(2, 2, channels, 4 * features), 1, _pad(1)).reshape(b, h + 1, w + 1, 2, 2, features)
    phases = [[y[:, a:a + h, c:c + w, a, c] for c in (0, 1)] for a in (0, 1)]
  out = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (B, H, 2, W, 2, C)
  return out.reshape(b, 2 * h, 2 * w, features)


def _conv_transpose_fwd(x, kernel, method):
  return conv_transpose4x4(x, kernel, method), (x, kernel)


def _conv_transpose_bwd(method, residuals, dy):
  del method
  x, kernel = residuals
  h, w = x.shape[1:3]
  dx = _lax_conv(dy, kernel, 2, _pad(1))
  dyp = jnp.pad(dy, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dk = jnp.stack([jnp.einsum("bhwi,bhwo->io", x, dyp[:, ky:ky + 2 * h:2, kx:kx + 2 * w:2])
                  for ky in range(4) for kx in range(4)])
  return dx, dk.reshape(4, 4, *dk.shape[1:]).transpose(0, 1, 3, 2).astype(kernel.dtype)


conv_transpose4x4.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class Conv(nn.Module):
  """A square convolution with `nn.Conv`'s parameters ("kernel" HWIO, optional "bias"), run by `conv`."""
  features: int
  size: int
  stride: int = 1
  padding: int = 1
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", conv_init, (self.size, self.size, x.shape[-1], self.features))
    y = (conv if _on_cpu() else _lax_conv)(x.astype(self.dtype), kernel.astype(self.dtype), self.stride,
                                           _pad(self.padding))
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


class DownBlock(nn.Module):
  """Conv 4×4 (stride 2, pad 1) → [BatchNorm] → LeakyReLU(0.2); the conv has a bias only without norm."""
  features: int
  use_norm: bool = True
  stride: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = Conv(self.features, 4, self.stride, use_bias=not self.use_norm, dtype=self.dtype, name="conv")(x)
    if self.use_norm:
      x = BatchNorm(name="norm")(x, train)
    return nn.leaky_relu(x, 0.2)


class ConvTranspose4x4(nn.Module):
  """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1, no bias) with parameter "kernel".

  The kernel is stored as Flax's transposed layout (kh, kw, out, in), i.e. PyTorch's
  (in, out, kh, kw) permuted. `method` picks one of equal computations (`conv_transpose4x4`);
  "dilated" is the input-dilated `lax.conv_transpose` with JAX's own gradient, the reference, and
  what "auto" runs on GPUs and TPUs.
  """
  features: int
  method: TransposeMethod = "auto"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", conv_init, (4, 4, self.features, x.shape[-1])).astype(self.dtype)
    x = x.astype(self.dtype)
    if self.method == "dilated" or (self.method == "auto" and not _on_cpu()):
      # PyTorch padding p of a transposed conv is lax padding k - 1 - p on the dilated input.
      return jax.lax.conv_transpose(x, kernel, (2, 2), _pad(2), dimension_numbers=_DIMS, transpose_kernel=True)
    return conv_transpose4x4(x, kernel, self.method)


class UpBlock(nn.Module):
  """×2 up-convolution (no bias) → BatchNorm → [Dropout] → ReLU.

  `upsampling="none"` is ConvTranspose 4×4 stride 2 pad 1; "nearest"/"bilinear" resize ×2 and
  apply a 3×3 conv, as the original's upsampling variant.
  """
  features: int
  dropout_rate: float = 0.0
  upsampling: Upsampling = "none"
  dtype: Dtype = jnp.float32
  transpose_method: TransposeMethod = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if self.upsampling == "none":
      x = ConvTranspose4x4(self.features, self.transpose_method, self.dtype, name="up")(x)
    else:
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), method=self.upsampling)
      x = Conv(self.features, 3, use_bias=False, dtype=self.dtype, name="conv")(x)
    x = BatchNorm(name="norm")(x, train)
    if self.dropout_rate > 0:
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.relu(x)


class UNetGenerator(nn.Module):
  """U-Net generator with skips: `levels` down blocks, mirrored up blocks, Conv 3×3 head → tanh.

  Decoder block i < L outputs the width of encoder level L-1-i and is followed by
  concat(skip, output); block L maps to 64 channels. Dropout sits on the innermost
  min(3, L-1) decoder blocks. The input size must be a multiple of 2**levels. Parameters are
  float32; `dtype` is the computation dtype (bfloat16 for mixed precision); the output is float32.
  `transpose_method` picks one of the equal forms of the transposed convolution (same parameters).
  """
  levels: int = 8
  out_channels: int = 3
  upsampling: Upsampling = "none"
  dropout_rate: float = 0.5
  dtype: Dtype = jnp.float32
  transpose_method: TransposeMethod = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    widths = UNET_WIDTHS[:self.levels]
    skips = []
    for i, width in enumerate(widths):
      x = DownBlock(width, use_norm=i > 0, dtype=self.dtype, name=f"enc{i + 1}")(x, train)
      skips.append(x)
    x = skips[-1]
    for i in range(1, self.levels + 1):
      width = widths[self.levels - 1 - i] if i < self.levels else 64
      rate = self.dropout_rate if i <= min(3, self.levels - 1) else 0.0
      x = UpBlock(width, rate, self.upsampling, self.dtype, self.transpose_method, name=f"dec{i}")(x, train)
      if i < self.levels:
        x = jnp.concatenate([skips[self.levels - 1 - i], x], axis=-1)
    x = Conv(self.out_channels, 3, dtype=self.dtype, name="head")(x)
    return jnp.tanh(x.astype(jnp.float32))


class PatchDiscriminator(nn.Module):
  """PatchGAN on concat(SAR, optical): C64 (no norm) C128 C256 … C512 (stride 1) → Conv 4×4 to logits.

  With `layers=3` this is the 70×70 PatchGAN: 30×30 logits at 256². Logits are float32.
  """
  layers: int = 3
  features: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, sar: jax.Array, optical: jax.Array, train: bool) -> jax.Array:
    x = jnp.concatenate([sar, optical], axis=-1)
    x = DownBlock(self.features, use_norm=False, dtype=self.dtype, name="block0")(x, train)
    for n in range(1, self.layers):
      x = DownBlock(self.features * min(2**n, 8), dtype=self.dtype, name=f"block{n}")(x, train)
    x = DownBlock(self.features * min(2**self.layers, 8), stride=1, dtype=self.dtype,
                  name=f"block{self.layers}")(x, train)
    x = Conv(1, 4, dtype=self.dtype, name="final")(x)
    return x.astype(jnp.float32)


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
