"""A trained generator restored from a workdir, with the pixel mapping it was trained with."""

import dataclasses
import functools
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np

from sar2optical import checkpoint, training
from sar2optical.pixels import PixelSpec


@dataclasses.dataclass
class TrainedGenerator:
  """The generator of one checkpoint, in eval mode (running BatchNorm statistics, no dropout)."""
  config: ml_collections.ConfigDict
  pixels: PixelSpec
  step: int
  model: training.Pix2Pix
  g_params: Any
  g_stats: Any

  @functools.cached_property
  def _forward(self):
    return jax.jit(lambda params, stats, sar: training.generate(self.model, params, stats, sar))

  def __call__(self, sar: np.ndarray) -> jax.Array:
    """uint8 SAR (B, S, S, in_channels) → generator output in the model range."""
    return self._forward(self.g_params, self.g_stats, sar)

  @property
  def image_size(self) -> int:
    return self.config.image_size

  @property
  def in_channels(self) -> int:
    return self.config.model.in_channels


def load_generator(workdir: str | pathlib.Path, step: str | int = "latest") -> TrainedGenerator:
  """Restores the generator of `step` ('latest' or a number) with its config and pixel mapping."""
  checkpoints = checkpoint.Checkpoints(workdir, create=False)
  step = checkpoints.resolve_step(step)
  metadata = checkpoints.metadata(step)
  config = checkpoint.config_from_metadata(metadata)
  pixels = PixelSpec.from_dict(metadata["pixels"])
  model = training.make_pix2pix(config, pixels)
  mesh = training.make_mesh(jax.local_devices()[:1])
  abstract = training.abstract_state(model, mesh, config.image_size, config.model.in_channels)
  state = checkpoints.restore(step, abstract)
  checkpoints.close()
  return TrainedGenerator(config, pixels, step, model, state.g_params, state.g_stats)
