"""The generator as everything after training uses it: the network a config's `model` fields make, and its
forward pass from uint8 SAR to the model range in an explicit mode, compiled once per network and mode.

`eval` mode: running BatchNorm statistics, no dropout (the original SAR2Optical's default, and ours).
`train` mode: batch statistics and dropout with a fixed key, as the pix2pix authors test; it needs
batches of at least MIN_TRAIN_MODE_BATCH, since BatchNorm's batch statistics of one image normalise it away.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from sar2optical.core.errors import ConfigError
from sar2optical.model import networks
from sar2optical.model.pixels import PixelSpec

if TYPE_CHECKING:  # configs are ml_collections.ConfigDicts; read by attribute only, so not imported here
  import ml_collections

Mode = Literal["eval", "train"]
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MIN_TRAIN_MODE_BATCH = 2

Forward = Callable[[Any, Any, jax.Array], jax.Array]  # (g_params, g_stats, uint8 SAR) → output in the model range


def make_generator(model_config: "ml_collections.ConfigDict") -> networks.UNetGenerator:
  return networks.UNetGenerator(levels=model_config.levels, upsampling=model_config.upsampling,
                                dropout_rate=model_config.dropout_rate, dtype=COMPUTE_DTYPES[model_config.dtype])


def check_batch(batch_size: int, mode: Mode, what: str) -> None:
  """ConfigError naming `what` when `mode` is train and `batch_size` is below MIN_TRAIN_MODE_BATCH."""
  if mode == "train" and batch_size < MIN_TRAIN_MODE_BATCH:
    raise ConfigError(f"{what}: train-mode inference needs at least {MIN_TRAIN_MODE_BATCH} images a batch "
                      f"(BatchNorm batch statistics), got {batch_size}")


def generate(network: nn.Module, pixels: PixelSpec, g_params: Any, g_stats: Any, sar: jax.Array, *,
             train: bool = False, dropout_rng: jax.Array | None = None) -> jax.Array:
  """Generator output in the model range for uint8 SAR; eval mode by default (running statistics)."""
  x = pixels.to_model(sar)
  rngs = {"dropout": dropout_rng} if train else {}
  out = network.apply({"params": g_params, "batch_stats": g_stats}, x, train=train, rngs=rngs,
                      mutable=["batch_stats"] if train else False)
  return out[0] if train else out


def forward(network: nn.Module, pixels: PixelSpec, mode: Mode = "eval", seed: int = 0) -> Forward:
  """`generate` in `mode` as a function of the variables and SAR; train mode's dropout key comes from `seed`."""
  train = mode == "train"
  dropout_rng = jax.random.PRNGKey(seed) if train else None
  return lambda g_params, g_stats, sar: generate(network, pixels, g_params, g_stats, sar, train=train,
                                                 dropout_rng=dropout_rng)


def jit_forward(network: nn.Module, pixels: PixelSpec, mode: Mode = "eval", seed: int = 0) -> Forward:
  """The compiled `forward`: what predict, the API, export checks, validation and sample grids call."""
  return jax.jit(forward(network, pixels, mode, seed))
