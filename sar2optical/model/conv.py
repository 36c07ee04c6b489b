"""The networks' convolutions, each in the form the platform it is compiled for runs fastest.

`conv` equals `lax.conv_general_dilated` (NHWC input, HWIO kernel); `conv_transpose4x4` equals
PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1, no bias). Both are staged with
`lax.platform_dependent`: the platform a computation is *lowered for* picks the branch, not the
process's default backend, so a jit placed on the CPU of a GPU host gets the CPU form, and an
export for several platforms carries each platform's form (resolved when it is compiled).

  cpu      the hand-written forms below, with custom gradients: products of gathered patches,
           per-tap weight-gradient products, the transposed conv by one product or one sub-pixel
           conv. Measured several times faster on XLA:CPU than its own convolutions.
  default  XLA's convolutions (`lax.conv_general_dilated`, `lax.conv_transpose`; cuDNN on GPUs,
           the TPU compiler), differentiated by JAX. `conv_transpose4x4(accelerator_form="subpixel")`
           puts the sub-pixel form (one stride-1 convolution with 4× the outputs, then
           depth-to-space, also differentiated by JAX) in place of `lax.conv_transpose` there;
           `bench/gpu_speed.py --forms` measures the two on a GPU.

Invariants: every form computes the same function and gradient (within float error); the CPU
form is chosen from static shapes only (a symbolic `jax.export` batch counts as large), so a
given shape always compiles to the same computation.
"""

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp

Padding = tuple[tuple[int, int], tuple[int, int]]
TransposeForm = Literal["auto", "matmul", "subpixel"]
#: The transposed convolution off the CPU: XLA's input-dilated `lax.conv_transpose`, or the sub-pixel form.
AcceleratorForm = Literal["dilated", "subpixel"]

_DIMS = ("NHWC", "HWIO", "NHWC")


def symmetric(p: int) -> Padding:
  """`p` pixels on each side of both spatial axes."""
  return ((p, p), (p, p))


def conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, (stride, stride), padding)` on NHWC × HWIO, per platform."""
  return jax.lax.platform_dependent(x, kernel, cpu=lambda x, k: _cpu_conv(x, k, stride, padding),
                                    default=lambda x, k: _lax_conv(x, k, stride, padding))


def conv_transpose4x4(x: jax.Array, kernel: jax.Array, accelerator_form: AcceleratorForm = "dilated") -> jax.Array:
  """PyTorch's ConvTranspose2d(4, stride 2, padding 1) on NHWC; `kernel` is (kh, kw, out, in).

  (B, H, W, in) → (B, 2H, 2W, out). Input pixel (m, n) adds x·kernel[ky, kx] to output pixel
  (2m - 1 + ky, 2n - 1 + kx). `accelerator_form` is the form off the CPU (GPUs, TPUs); the CPU
  always gets its own forms.
  """
  accelerator = _lax_conv_transpose4x4 if accelerator_form == "dilated" else _subpixel_conv_transpose4x4
  return jax.lax.platform_dependent(x, kernel, cpu=lambda x, k: _cpu_conv_transpose4x4(x, k), default=accelerator)


# The reference forms: XLA's convolutions with JAX's gradients.

def _lax_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=_DIMS)


def _lax_conv_transpose4x4(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The input-dilated `lax.conv_transpose` ("dilated"): PyTorch padding p is lax padding k - 1 - p."""
  return jax.lax.conv_transpose(x, kernel, (2, 2), symmetric(2), dimension_numbers=_DIMS, transpose_kernel=True)


def _subpixel_conv_transpose4x4(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The sub-pixel form (`_transpose_by_subpixel`) differentiated by JAX: XLA's convolution gradients."""
  return _interleave(_transpose_by_subpixel(x, kernel))


# The CPU forms. `conv` and `conv_transpose4x4` look these names up when they trace.

def _cpu_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """The XLA:CPU form of `conv`: `_conv_forms`, with its custom gradient."""
  return _conv_forms(x, kernel, stride, padding)


def _cpu_conv_transpose4x4(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The XLA:CPU form of `conv_transpose4x4`: matmul or sub-pixel by `_transpose_as_product`."""
  return _conv_transpose4x4_forms(x, kernel, "auto")


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


def _transpose_as_product(x: jax.Array) -> bool:
  """Whether "auto" picks the "matmul" transposed conv: the batch has no more pixels than input channels."""
  b, h, w, channels = x.shape
  return _at_most(b * h * w, channels)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_forms(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """`_lax_conv`, computed in the forms XLA:CPU runs fastest.

  Forward: one product of the gathered patches with the kernel when the batch has no more output
  pixels than output channels (the patches are then no larger than the kernel), else XLA's conv.
  Input gradient: the transposed product, `_conv_transpose4x4_forms` for the 4×4 stride-2 convs,
  else XLA's. Kernel gradient (`_kernel_gradient`): one matrix product per tap (or, with few output
  channels, one product of shifted output gradients), several times faster on XLA:CPU than its
  weight-gradient conv.
  """
  size, _, channels, features = kernel.shape
  out_hw = _conv_out_hw(x, size, stride, padding)
  if not _as_product(x, out_hw, features):
    return _lax_conv(x, kernel, stride, padding)
  return jnp.dot(_patches(x, size, stride, padding, out_hw), kernel.reshape(size * size * channels, features))


def _conv_fwd(x, kernel, stride, padding):
  return _conv_forms(x, kernel, stride, padding), (x, kernel)


def _conv_bwd(stride: int, padding: Padding, residuals: tuple[jax.Array, jax.Array],
              dy: jax.Array) -> tuple[jax.Array, jax.Array]:
  x, kernel = residuals
  size, _, _, features = kernel.shape
  out_hw = dy.shape[1:3]
  if _as_product(x, out_hw, features):
    # (tap·in) × pixels, so that the kernel is the product's left operand as stored.
    d_patches = jnp.einsum("ko,bhwo->kbhw", kernel.reshape(-1, features), dy).transpose(1, 2, 3, 0)
    (dx,) = jax.vjp(lambda x: _patches(x, size, stride, padding, out_hw), x)[1](d_patches)
  elif (size, stride, padding) == (4, 2, symmetric(1)) and x.shape[1:3] == (2 * out_hw[0], 2 * out_hw[1]):
    dx = _conv_transpose4x4_forms(dy, kernel, "auto")  # this conv's transpose, with the kernel as stored
  else:
    (dx,) = jax.vjp(lambda x: _lax_conv(x, kernel, stride, padding), x)[1](dy)
  return dx, _kernel_gradient(x, dy, kernel, stride, padding)


def _kernel_gradient(x: jax.Array, dy: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """d(loss)/d(kernel) of `conv` from its input and output gradient, HWIO in the kernel's dtype."""
  size, _, channels, features = kernel.shape
  out_hw = dy.shape[1:3]
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
  return dk.astype(kernel.dtype)


_conv_forms.defvjp(_conv_fwd, _conv_bwd)


def _transpose_by_matmul(x: jax.Array, kernel: jax.Array) -> list[list[jax.Array]]:
  """"matmul": one product of the input pixels with the whole kernel, then the overlapping 4×4
  footprints are added (no copy of the kernel: fastest while the batch has no more pixels than
  input channels). Returns the phases: [a][c] is output pixels (2m + a, 2n + c), (B, H, W, out)."""
  _, h, w, _ = x.shape
  # (tap, out) × pixels: the kernel is the product's left operand as stored; only x is transposed.
  p = jnp.einsum("yxoi,bhwi->yxobhw", kernel, x).transpose(3, 4, 5, 0, 1, 2)
  p = jnp.pad(p, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
  # Output row 2m + a sums input rows m + dy through kernel rows ky, for (dy, ky) in taps[a].
  taps = {0: ((0, 1), (-1, 3)), 1: ((0, 2), (1, 0))}
  return [[sum(p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, ky, kx] for dy, ky in taps[a] for dx, kx in taps[c])
           for c in (0, 1)] for a in (0, 1)]


def _transpose_by_subpixel(x: jax.Array, kernel: jax.Array) -> list[list[jax.Array]]:
  """"subpixel": output phase (a, c) of each 2×2 block is a 2×2 convolution of the input; the four
  run as one stride-1 convolution with 4× the output channels. Returns the phases as `_transpose_by_matmul`."""
  b, h, w, channels = x.shape
  features = kernel.shape[2]
  # Padded input rows (m + a, m + a + 1) feed output row 2m + a through kernel rows (3 - a, 1 - a),
  # i.e. rows (a, a + 2) of the flipped kernel; likewise for columns.
  k = kernel[::-1, ::-1].reshape(2, 2, 2, 2, features, channels).transpose(0, 2, 5, 1, 3, 4)
  y = _lax_conv(x, k.reshape(2, 2, channels, 4 * features), 1, symmetric(1)).reshape(b, h + 1, w + 1, 2, 2, features)
  return [[y[:, a:a + h, c:c + w, a, c] for c in (0, 1)] for a in (0, 1)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_transpose4x4_forms(x: jax.Array, kernel: jax.Array, method: TransposeForm) -> jax.Array:
  """`_lax_conv_transpose4x4` in the forms XLA:CPU runs fastest: "matmul" (`_transpose_by_matmul`),
  "subpixel" (`_transpose_by_subpixel`, then depth-to-space), or "auto", which picks between the
  two by `_transpose_as_product`. The backward pass (shared) computes the input gradient as the
  stride-2 convolution with the kernel as stored, and the kernel gradient as one product per tap.
  """
  if method == "matmul" or (method == "auto" and _transpose_as_product(x)):
    return _interleave(_transpose_by_matmul(x, kernel))
  return _interleave(_transpose_by_subpixel(x, kernel))


def _interleave(phases: list[list[jax.Array]]) -> jax.Array:
  """Depth-to-space of the four output phases: [a][c] (B, H, W, C) becomes pixels (2m + a, 2n + c)."""
  b, h, w, features = phases[0][0].shape
  out = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (B, H, 2, W, 2, C)
  return out.reshape(b, 2 * h, 2 * w, features)


def _conv_transpose_fwd(x, kernel, method):
  return _conv_transpose4x4_forms(x, kernel, method), (x, kernel)


def _conv_transpose_bwd(method: TransposeForm, residuals: tuple[jax.Array, jax.Array],
                        dy: jax.Array) -> tuple[jax.Array, jax.Array]:
  del method
  x, kernel = residuals
  h, w = x.shape[1:3]
  dx = _lax_conv(dy, kernel, 2, symmetric(1))
  dyp = jnp.pad(dy, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dk = jnp.stack([jnp.einsum("bhwi,bhwo->io", x, dyp[:, ky:ky + 2 * h:2, kx:kx + 2 * w:2])
                  for ky in range(4) for kx in range(4)])
  return dx, dk.reshape(4, 4, *dk.shape[1:]).transpose(0, 1, 3, 2).astype(kernel.dtype)


_conv_transpose4x4_forms.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)
