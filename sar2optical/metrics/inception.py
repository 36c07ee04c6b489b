"""Inception-v3 in Flax linen (NHWC), inference only: pytorch-fid's FID network and torchvision's ImageNet classifier.

`variant="standard"` is pytorch-fid's `InceptionV3([3])`: torchvision's Inception-v3 with the FID
patches of the TensorFlow graph (FIDInceptionA/C/E_1: average pools that exclude the padding;
FIDInceptionE_2: a max pool), images resized bilinearly to 299² (as `F.interpolate(...,
align_corners=False)`, no antialiasing) from [0, 1] and mapped to [-1, 1]; the features are the
2048 channels of the final average pool.

`variant="sar2optical"` is the original project's FID network: torchvision's `inception_v3` with
ImageNet weights (plain blocks, `transform_input=True`), images resized to 342 on the shorter side
(bilinear, antialiased as torchvision's transforms) and centre-cropped to 299², ImageNet-normalised;
the features are the 1000 logits.

Each BasicConv2d (conv without bias, BatchNorm ε 1e-3, ReLU) keeps the BatchNorm folded into the
conv: `kernel` (HWIO) scaled by γ/√(σ²+ε), `bias` β − μγ/√(σ²+ε) (see `weights.inception_variables`).
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Variant = Literal["standard", "sar2optical"]
VARIANTS: tuple[Variant, ...] = ("standard", "sar2optical")
FEATURES = {"standard": 2048, "sar2optical": 1000}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicConv(nn.Module):
  """Conv (BatchNorm folded in) + bias + ReLU; 'SAME' padding is torch's symmetric (k−1)/2 for odd kernels."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (*self.kernel, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = lax.conv_general_dilated(x, kernel, (self.strides, self.strides), self.padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return nn.relu(y + bias)


def max_pool(x: jax.Array, strides: int, padding: int = 0) -> jax.Array:
  """3×3 max pool (padding counts as −∞, as torch's)."""
  pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, strides, strides, 1), pad)


def avg_pool_3x3(x: jax.Array, count_include_pad: bool) -> jax.Array:
  """3×3 average pool, stride 1, padding 1; without `count_include_pad` the padding is left out of each mean (TF's)."""
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = lax.reduce_window(x, 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
  if count_include_pad:
    return total / 9.0
  count = lax.reduce_window(jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
  return total / count


class InceptionA(nn.Module):
  """Mixed_5b/c/d: 1×1, 5×5, double 3×3 and pooled branches."""
  pool_features: int
  fid: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv(64, (5, 5), name="branch5x5_2")(BasicConv(48, (1, 1), name="branch5x5_1")(x))
    b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), name="branch3x3dbl_3")(BasicConv(96, (3, 3), name="branch3x3dbl_2")(b3))
    pool = BasicConv(self.pool_features, (1, 1), name="branch_pool")(avg_pool_3x3(x, not self.fid))
    return jnp.concatenate([b1, b5, b3, pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: grid reduction 35 → 17."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv(384, (3, 3), 2, "VALID", name="branch3x3")(x)
    d = BasicConv(96, (3, 3), name="branch3x3dbl_2")(BasicConv(64, (1, 1), name="branch3x3dbl_1")(x))
    d = BasicConv(96, (3, 3), 2, "VALID", name="branch3x3dbl_3")(d)
    return jnp.concatenate([b3, d, max_pool(x, 2)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..e: factorised 7×7 branches."""
  channels_7x7: int
  fid: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv(c, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv(192, (7, 1), name="branch7x7_3")(BasicConv(c, (1, 7), name="branch7x7_2")(b7))
    d = BasicConv(c, (1, 1), name="branch7x7dbl_1")(x)
    for i, (features, kernel) in enumerate([(c, (7, 1)), (c, (1, 7)), (c, (7, 1)), (192, (1, 7))], start=2):
      d = BasicConv(features, kernel, name=f"branch7x7dbl_{i}")(d)
    pool = BasicConv(192, (1, 1), name="branch_pool")(avg_pool_3x3(x, not self.fid))
    return jnp.concatenate([b1, b7, d, pool], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: grid reduction 17 → 8."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv(320, (3, 3), 2, "VALID", name="branch3x3_2")(BasicConv(192, (1, 1), name="branch3x3_1")(x))
    b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (7, 1), name="branch7x7x3_3")(BasicConv(192, (1, 7), name="branch7x7x3_2")(b7))
    b7 = BasicConv(192, (3, 3), 2, "VALID", name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, max_pool(x, 2)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/c: expanded 3×3 branches; `pool` is torchvision's 'avg', FIDInceptionE_1's 'avg_exclude_pad' or E_2's 'max'."""
  pool: Literal["avg", "avg_exclude_pad", "max"]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), name="branch3x3_2b")(b3)], axis=-1)
    d = BasicConv(384, (3, 3), name="branch3x3dbl_2")(BasicConv(448, (1, 1), name="branch3x3dbl_1")(x))
    d = jnp.concatenate([BasicConv(384, (1, 3), name="branch3x3dbl_3a")(d),
                         BasicConv(384, (3, 1), name="branch3x3dbl_3b")(d)], axis=-1)
    pooled = max_pool(x, 1, 1) if self.pool == "max" else avg_pool_3x3(x, self.pool == "avg")
    pool = BasicConv(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, d, pool], axis=-1)


class InceptionV3(nn.Module):
  """Inception-v3 on a preprocessed NHWC batch (299², the network's input range) → (N, FEATURES[variant])."""
  variant: Variant = "standard"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fid = self.variant == "standard"
    x = BasicConv(32, (3, 3), 2, "VALID", name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), padding="VALID", name="Conv2d_2a_3x3")(x)
    x = max_pool(BasicConv(64, (3, 3), name="Conv2d_2b_3x3")(x), 2)
    x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = max_pool(BasicConv(192, (3, 3), padding="VALID", name="Conv2d_4a_3x3")(x), 2)
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
      x = InceptionA(pool_features, fid, name=name)(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, channels in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(channels, fid, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE("avg_exclude_pad" if fid else "avg", name="Mixed_7b")(x)
    x = InceptionE("max" if fid else "avg", name="Mixed_7c")(x)
    x = jnp.mean(x, axis=(1, 2))
    return x if fid else nn.Dense(1000, name="fc")(x)


def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
  """(size_out, size_in) weights of torch's bilinear interpolation along one axis (align_corners=False, no antialias)."""
  source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
  low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
  high = np.minimum(low + 1, size_in - 1)
  weight = source - low
  matrix = np.zeros((size_out, size_in), np.float64)
  np.add.at(matrix, (np.arange(size_out), low), 1.0 - weight)
  np.add.at(matrix, (np.arange(size_out), high), weight)
  return matrix.astype(np.float32)


def preprocess(images: jax.Array, variant: Variant) -> jax.Array:
  """uint8 NHWC RGB → the network's input: 299² in [-1, 1] (standard) or ImageNet-normalised and input-transformed."""
  x = images.astype(jnp.float32) / 255.0
  height, width = images.shape[1:3]
  if variant == "standard":
    x = jnp.einsum("oh,nhwc,pw->nopc", bilinear_matrix(height, 299), x, bilinear_matrix(width, 299))
    return 2 * x - 1
  size = (342, int(342 * width / height)) if height <= width else (int(342 * height / width), 342)
  x = jax.image.resize(x, (x.shape[0], *size, 3), "bilinear", antialias=True)
  top, left = int(round((size[0] - 299) / 2.0)), int(round((size[1] - 299) / 2.0))
  x = x[:, top:top + 299, left:left + 299]
  mean, std = jnp.asarray(IMAGENET_MEAN), jnp.asarray(IMAGENET_STD)
  x = (x - mean) / std
  return x * (std / 0.5) + (mean - 0.5) / 0.5  # torchvision's transform_input for its ImageNet weights


class InceptionFeatures:
  """Features of uint8 NHWC RGB batches (preprocessing included), jit-compiled per batch shape."""

  def __init__(self, variant: Variant, variables: dict):
    self.variant, self.variables = variant, variables
    model = InceptionV3(variant)
    self._apply = jax.jit(lambda variables, images: model.apply(variables, preprocess(images, variant)))

  def __call__(self, images) -> jax.Array:
    return self._apply(self.variables, images)
