"""A trained generator restored from a workdir, with the pixel mapping it was trained with."""

import dataclasses
import functools
import pathlib
from typing import Any, Literal

import jax
import ml_collections
import numpy as np

from sar2optical import checkpoint
from sar2optical.training import mesh as mesh_lib
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib
from sar2optical.training.step import generate
from sar2optical.pixels import PixelSpec


Mode = Literal["eval", "train"]


@dataclasses.dataclass
class TrainedGenerator:
  """The generator of one checkpoint in an explicit inference mode.

  `g_params` and `g_stats` are the EMA of G's when the run kept one (`model.ema_decay` > 0).
  `eval`: running BatchNorm statistics, no dropout (the original SAR2Optical's default, and ours).
  `train`: batch statistics and dropout, as the pix2pix authors test; needs batches of ≥ 2 and
  uses a fixed dropout key, so results are reproducible for a given batch.
  """
  config: ml_collections.ConfigDict
  pixels: PixelSpec
  step: int
  recipe: recipe_lib.Recipe
  g_params: Any
  g_stats: Any
  mode: Mode = "eval"

  @functools.cached_property
  def _forward(self):
    train = self.mode == "train"
    dropout_rng = jax.random.PRNGKey(self.config.seed) if train else None
    return jax.jit(lambda params, stats, sar: generate(self.recipe, params, stats, sar, train=train,
                                                                 dropout_rng=dropout_rng))

  def __call__(self, sar: np.ndarray) -> jax.Array:
    """uint8 SAR (B, S, S, in_channels) → generator output in the model range."""
    if self.mode == "train" and len(sar) < 2:
      raise ValueError("train-mode inference needs a batch of at least 2 (BatchNorm batch statistics)")
    return self._forward(self.g_params, self.g_stats, sar)

  @property
  def image_size(self) -> int:
    return self.config.image_size

  @property
  def in_channels(self) -> int:
    return self.config.model.in_channels

  def describe(self) -> dict[str, Any]:
    """What an exported artifact's sidecar says of its generator: step, size, channels, pixels, mode, model."""
    return {"step": self.step, "image_size": self.image_size, "in_channels": self.in_channels,
            "pixels": self.pixels.to_dict(), "mode": self.mode, "model": self.config.model.to_dict()}


def load_checkpoint(workdir: str | pathlib.Path, step: str | int = "latest",
                    mode: Mode = "eval") -> tuple[TrainedGenerator, state_lib.TrainState]:
  """The generator of `step` ('latest' or a number) and the whole TrainState it was restored from.

  The generator's variables are the state's `inference_variables`: the EMA of G when the run kept one
  (its config's `model.ema_decay` > 0, saved in the checkpoint's metadata), else G's own.
  """
  checkpoints = checkpoint.Checkpoints(workdir, create=False)
  try:
    step = checkpoints.resolve_step(step)
    metadata = checkpoints.metadata(step)
    config = checkpoint.config_from_metadata(metadata)
    pixels = PixelSpec.from_dict(metadata["pixels"])
    recipe = recipe_lib.make_recipe(config, pixels)
    mesh = mesh_lib.make_mesh(jax.local_devices()[:1])
    abstract = state_lib.abstract_state(recipe, mesh, config.image_size, config.model.in_channels)
    state = checkpoints.restore(step, abstract)
  finally:
    checkpoints.close()
  return TrainedGenerator(config, pixels, step, recipe, *state_lib.inference_variables(state), mode), state


def load_generator(workdir: str | pathlib.Path, step: str | int = "latest", mode: Mode = "eval") -> TrainedGenerator:
  """Restores the generator of `step` ('latest' or a number) with its config and pixel mapping."""
  return load_checkpoint(workdir, step, mode)[0]
