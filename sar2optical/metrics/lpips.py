"""LPIPS v0.1 (Zhang et al. 2018) in Flax linen (NHWC), as the lpips package builds it, inference only.

Both images in [-1, 1] → ScalingLayer ((x − shift) / scale) → the five ReLU taps of torchvision's
AlexNet or VGG16 `features` → each tap unit-normalised over channels (x / (‖x‖ + 1e-10)) → squared
difference → the tap's learned 1×1 linear layer (no bias) → spatial mean → summed over the taps.
The convs are named `features_N` after torchvision's `features.N`, the linear layers `linK`.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Net = Literal["alex", "vgg"]
NETS: tuple[Net, ...] = ("alex", "vgg")
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# Per tap: (torchvision index, output channels, kernel, stride, padding) of each conv+ReLU.
STAGES = {
    "alex": [[(0, 64, 11, 4, 2)], [(3, 192, 5, 1, 2)], [(6, 384, 3, 1, 1)], [(8, 256, 3, 1, 1)],
             [(10, 256, 3, 1, 1)]],
    "vgg": [[(0, 64, 3, 1, 1), (2, 64, 3, 1, 1)], [(5, 128, 3, 1, 1), (7, 128, 3, 1, 1)],
            [(10, 256, 3, 1, 1), (12, 256, 3, 1, 1), (14, 256, 3, 1, 1)],
            [(17, 512, 3, 1, 1), (19, 512, 3, 1, 1), (21, 512, 3, 1, 1)],
            [(24, 512, 3, 1, 1), (26, 512, 3, 1, 1), (28, 512, 3, 1, 1)]],
}
POOL = {"alex": (3, 2), "vgg": (2, 2)}
# The taps whose slice starts with a max pool (AlexNet 3×3 stride 2, VGG 2×2 stride 2).
POOLED_TAPS = {"alex": (1, 2), "vgg": (1, 2, 3, 4)}


class Conv(nn.Module):
  """Conv with bias (HWIO) + ReLU, torch's symmetric padding."""
  features: int
  kernel: int
  strides: int
  padding: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel, self.kernel, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    pad = ((self.padding, self.padding),) * 2
    y = lax.conv_general_dilated(x, kernel, (self.strides,) * 2, pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return nn.relu(y + bias)


class LPIPS(nn.Module):
  """LPIPS distance of two NHWC batches in [-1, 1] → (N,)."""
  net: Net = "alex"

  def taps(self, x: jax.Array) -> list[jax.Array]:
    window, stride = POOL[self.net]
    x = (x - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)
    outputs = []
    for tap, stage in enumerate(STAGES[self.net]):
      if tap in POOLED_TAPS[self.net]:
        x = lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), "VALID")
      for index, features, kernel, strides, padding in stage:
        x = Conv(features, kernel, strides, padding, name=f"features_{index}")(x)
      outputs.append(x)
    return outputs

  @nn.compact
  def __call__(self, x0: jax.Array, x1: jax.Array) -> jax.Array:
    both = self.taps(jnp.concatenate([x0, x1]))
    total = 0.0
    for k, features in enumerate(both):
      f0, f1 = jnp.split(features / (jnp.sqrt(jnp.sum(features ** 2, -1, keepdims=True)) + 1e-10), 2)
      weight = self.param(f"lin{k}", nn.initializers.zeros, (features.shape[-1],))
      total = total + jnp.mean(jnp.sum((f0 - f1) ** 2 * weight, axis=-1), axis=(1, 2))
    return total


class LpipsDistance:
  """LPIPS of uint8 NHWC image pairs (mapped to [-1, 1] as x/127.5 − 1, lpips' `im2tensor`), jit-compiled per shape."""

  def __init__(self, net: Net, variables: dict):
    self.net, self.variables = net, variables
    model = LPIPS(net)
    self._apply = jax.jit(lambda variables, a, b: model.apply(variables, to_unit(a), to_unit(b)))

  def __call__(self, images0, images1) -> jax.Array:
    return self._apply(self.variables, images0, images1)


def to_unit(images: jax.Array) -> jax.Array:
  """uint8 → [-1, 1]."""
  return jnp.asarray(images, jnp.float32) / 127.5 - 1.0
