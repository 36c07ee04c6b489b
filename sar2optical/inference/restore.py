"""A trained generator restored from a workdir, with the config and pixel mapping it was trained with.

Only the generator's variables are read (an Orbax partial restore): not the discriminator, nor either
optimizer's moments, which are three quarters of a checkpoint.
"""

import dataclasses
import functools
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import config_from_metadata, pixel_scale_of
from sar2optical.model import generator as generator_lib
from sar2optical.model.generator import NO_AVERAGING, Averaging, Mode
from sar2optical.model.pixels import PixelSpec


@dataclasses.dataclass
class TrainedGenerator:
  """The generator of one checkpoint in an explicit inference mode (`sar2optical.model.generator`).

  `g_params` and `g_stats` are the EMA of G's when the run kept one (`model.ema_decay` > 0). Train mode
  uses a fixed dropout key (the config's seed), so its results are reproducible for a given batch.
  `pixel_scale`: input pixels per model pixel that it learned (`checkpoints.metadata`); tiles are resampled by it.
  `averaging`: what its outputs are the mean of (flips and rotations, dropout samples); off by default.
  """
  config: ml_collections.ConfigDict
  pixels: PixelSpec
  step: int
  network: nn.Module
  g_params: Any
  g_stats: Any
  mode: Mode = "eval"
  pixel_scale: float = 1.0
  averaging: Averaging = NO_AVERAGING

  @functools.cached_property
  def _forward(self) -> generator_lib.Forward:
    return generator_lib.jit_forward(self.network, self.pixels, self.mode, self.config.seed, self.averaging)

  def __call__(self, sar: np.ndarray) -> jax.Array:
    """uint8 SAR (B, S, S, in_channels) → generator output in the model range."""
    generator_lib.check_batch(len(sar), self.mode, "the batch")
    return self._forward(self.g_params, self.g_stats, sar)

  @property
  def image_size(self) -> int:
    return self.config.image_size

  @property
  def in_channels(self) -> int:
    return self.config.model.in_channels

  def describe(self) -> dict[str, Any]:
    """What an exported artifact's sidecar says of its generator: step, size, channels, pixels, scale, mode, model;
    and its averaging, when on."""
    averaging = {"averaging": dataclasses.asdict(self.averaging)} if self.averaging.on else {}
    return {"step": self.step, "image_size": self.image_size, "in_channels": self.in_channels,
            "pixels": self.pixels.to_dict(), "pixel_scale": self.pixel_scale, "mode": self.mode,
            "model": self.config.model.to_dict(), **averaging}


def abstract_variables(network: nn.Module, image_size: int, in_channels: int) -> dict[str, Any]:
  """{"params", "batch_stats"} of `network` as shapes and dtypes on the first local device."""
  sar = jax.ShapeDtypeStruct((1, image_size, image_size, in_channels), jnp.float32)
  shapes = jax.eval_shape(functools.partial(network.init, train=False), jax.random.PRNGKey(0), sar)
  # The sharding of an array on that device (a SingleDeviceSharding): jax 0.12 deprecates the name
  # jax.sharding.SingleDeviceSharding, and jax.sharding.make_single_device_sharding is newer than our floor.
  device = jax.device_put(jnp.zeros((), jnp.float32), jax.local_devices()[0]).sharding
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
                      {"params": shapes["params"], "batch_stats": shapes.get("batch_stats", {})})


def load_generator(workdir: str | pathlib.Path, step: str | int = "latest", mode: Mode = "eval",
                   averaging: Averaging = NO_AVERAGING) -> TrainedGenerator:
  """Restores the generator of `step` ('latest', 'best' or a number) with its config, pixel mapping and scale,
  to run in `mode` with `averaging`.

  Its variables are the EMA of G when the run kept one (its config's `model.ema_decay` > 0, saved in the
  checkpoint's metadata), else G's own; nothing else of the training state is read.
  """
  checkpoints = manager.Checkpoints(workdir, create=False)
  try:
    step = checkpoints.resolve_step(step)
    metadata = checkpoints.metadata(step)
    config = config_from_metadata(metadata)
    pixels = PixelSpec.from_dict(metadata["pixels"])
    network = generator_lib.make_generator(config.model)
    variables = abstract_variables(network, config.image_size, config.model.in_channels)
    if config.model.ema_decay:
      restored = checkpoints.restore_part(step, {"g_ema": variables})["g_ema"]
    else:
      restored = checkpoints.restore_part(step, {"g_params": variables["params"], "g_stats": variables["batch_stats"]})
      restored = {"params": restored["g_params"], "batch_stats": restored["g_stats"]}
  finally:
    checkpoints.close()
  return TrainedGenerator(config, pixels, step, network, restored["params"], restored["batch_stats"], mode,
                          pixel_scale_of(metadata), averaging)
