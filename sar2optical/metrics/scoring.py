"""Scores a generator on a source of pairs, per image, jit-compiled once: the model and the floors.

Floors put a model's numbers in context: a constant image of the mean training colour, and each
target scored against another target of the same source (a seeded derangement). Two more are diagnostics,
not baselines, for they see the scored targets' colours: a constant image of the scored pairs' own mean colour
(`scene_colour`), and each target's own mean colour (`image_colour`: the part of the error that is a colour
shift of the whole image, which SAR cannot explain).

A model is scored at the pixel it learned (`config.data.fit`): pairs resized to its size (resize fit), or
(crop fit) pairs at their stored resolution, each translated by a `WholeImageTranslation` — predict.py's
tiles and blending — so that the numbers are those of predict.py's outputs; floors likewise.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from sar2optical.data import images, pipeline, sources
from sar2optical.metrics import distortion
from sar2optical.model import generator as generator_lib
from sar2optical.model.generator import NO_AVERAGING, Averaging, Mode
from sar2optical.model.pixels import PixelSpec

FLOORS = ("mean_colour", "other_target", "scene_colour", "image_colour")
#: The floors that see the scored targets' colours: diagnostics of the error's colour shift, which a model is
#: expected to score under.
DIAGNOSTIC_FLOORS = ("scene_colour", "image_colour")
#: (g_params, g_stats, uint8 SAR (H, W)) → uint8 RGB (H, W, 3): a whole image translated as predict.py translates
#: it (`inference.tile_engine.TiledTranslation`).
WholeImageTranslation = Callable[[Any, Any, np.ndarray], np.ndarray]


@dataclasses.dataclass
class Scores:
  """Per-image metrics of the model and of the floors, and the first pairs as grid rows."""
  model: dict[str, np.ndarray]
  floors: dict[str, dict[str, np.ndarray]]
  grid_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


class Evaluator:
  """Jit-compiled scoring of a generator in an explicit mode; compiled once, reused for every call.

  `eval` mode uses running BatchNorm statistics and no dropout; `train` mode uses batch statistics
  and dropout (as the pix2pix authors test) with a fixed key, and needs batches of at least 2 (the
  last batch is padded with repeats of its last pair, which are not scored).

  With `tiled` (a crop-fit model), pairs are scored one at a time at their stored size, translated by
  `tiled` (batch_size is then its tiles per generator call), and scored from its uint8 output.
  `averaging` (flips and rotations, dropout samples) makes each output a mean; `tiled` brings its own.
  """

  def __init__(self, network: nn.Module, pixels: PixelSpec, *, image_size: int, in_channels: int, batch_size: int,
               mode: Mode = "eval", seed: int = 0, tiled: WholeImageTranslation | None = None,
               averaging: Averaging = NO_AVERAGING):
    generator_lib.check_batch(batch_size, mode, "--batch_size")
    self.network, self.pixels, self.mode, self.batch_size, self.seed = network, pixels, mode, batch_size, seed
    self.image_size, self.in_channels, self.tiled, self.averaging = image_size, in_channels, tiled, averaging
    forward = generator_lib.forward(network, pixels, mode, seed, averaging)

    def score_model(g_params, g_stats, sar, optical):
      fake = forward(g_params, g_stats, sar)
      return distortion.image_metrics(pixels.to_unit(fake), self._unit(optical)), fake

    def score_floors(optical, other_optical, mean_colour, scene_colour):
      target = self._unit(optical)

      def constant(colour):
        return distortion.image_metrics(jnp.broadcast_to(colour, target.shape), target)

      return {"mean_colour": constant(mean_colour),
              "other_target": distortion.image_metrics(self._unit(other_optical), target),
              "scene_colour": constant(scene_colour),
              "image_colour": constant(jnp.mean(target, axis=(1, 2), keepdims=True))}

    self._score_model = jax.jit(score_model)
    self._score_uint8 = jax.jit(lambda generated, optical: distortion.image_metrics(self._unit(generated),
                                                                                     self._unit(optical)))
    self._score_floors = jax.jit(score_floors)

  def _unit(self, optical: jax.Array) -> jax.Array:
    return self.pixels.to_unit(self.pixels.to_model(optical))

  def _batches(self, source: sources.PairSource):
    if self.tiled is not None:
      return pipeline.eval_batches(source, image_size=None, in_channels=self.in_channels, batch_size=1)
    return pipeline.eval_batches(source, image_size=self.image_size, in_channels=self.in_channels,
                                 batch_size=self.batch_size)

  def _generate(self, g_params: Any, g_stats: Any, batch: dict[str, np.ndarray]) -> tuple[dict, np.ndarray]:
    """(per-image metrics, uint8 RGB) of the model on `batch`."""
    if self.tiled is None:
      values, fake = self._score_model(g_params, g_stats, batch["sar"], batch["optical"])
      return jax.device_get(values), self.pixels.to_uint8(fake)
    generated = np.stack([self.tiled(g_params, g_stats, sar[..., 0]) for sar in batch["sar"]])
    return jax.device_get(self._score_uint8(generated, batch["optical"])), generated

  def score(self, g_params: Any, g_stats: Any, source: sources.PairSource, *, mean_colour: np.ndarray | None = None,
            scene_colour: np.ndarray | None = None, grid_pairs: int = 0, progress_label: str = "",
            on_batch: Callable[..., None] | None = None) -> Scores:
    """Per-image metrics on `source` (in order); floors too when `mean_colour` is given (needs ≥ 2 pairs).

    `scene_colour` is the scene_colour floor's: `source`'s own mean colour, read here (`mean_colour`) when not given.

    With a `progress_label`, a tqdm progress bar (images, rate, ETA) on stderr. `on_batch(index, valid,
    generated, target, other_target)` sees each batch's uint8 images (other_target None without floors).
    """
    n = len(source)
    model_values = {name: np.zeros(n) for name in distortion.METRICS}
    floor_values = {floor: {name: np.zeros(n) for name in distortion.METRICS} for floor in FLOORS}
    with_floors = mean_colour is not None and n >= 2
    if with_floors and scene_colour is None:
      scene_colour = self.mean_colour(source)
    others = iter(self._batches(sources.Reordered(source, distortion.derangement(n, self.seed)))) if with_floors else None
    grid_rows = []
    progress = tqdm(total=n, unit="image", mininterval=1.0, desc=progress_label, disable=not progress_label)
    for batch in self._batches(source):
      values, generated = self._generate(g_params, g_stats, batch)
      valid, index = batch["valid"], batch["index"][batch["valid"]]
      for name in distortion.METRICS:
        model_values[name][index] = values[name][valid]
      other_optical = _sized_as(next(others)["optical"], batch["optical"]) if with_floors else None
      if with_floors:
        floors = jax.device_get(self._score_floors(batch["optical"], other_optical,
                                                   jnp.asarray(mean_colour, jnp.float32),
                                                   jnp.asarray(scene_colour, jnp.float32)))
        for floor in FLOORS:
          for name in distortion.METRICS:
            floor_values[floor][name][index] = floors[floor][name][valid]
      if on_batch is not None:
        on_batch(index, valid, generated, batch["optical"], other_optical)
      for i in np.flatnonzero(valid)[:max(grid_pairs - len(grid_rows), 0)]:
        grid_rows.append((batch["sar"][i], generated[i], batch["optical"][i]))
      progress.update(int(valid.sum()))
    progress.close()
    return Scores(model_values, floor_values if with_floors else {}, grid_rows)

  def mean_colour(self, source: sources.PairSource) -> np.ndarray:
    """Mean RGB in [0, 1] over every pixel of the source's optical images (at the size they are scored at)."""
    total, count = np.zeros(3), 0
    for batch in self._batches(source):
      optical = batch["optical"][batch["valid"]].astype(np.float64) / 255.0
      total += optical.sum(axis=(0, 1, 2))
      count += optical.shape[0] * optical.shape[1] * optical.shape[2]
    return total / count


def _sized_as(optical: np.ndarray, like: np.ndarray) -> np.ndarray:
  """uint8 (B, S, S, 3) `optical` resized to the size of `like` (pairs scored at their stored sizes may differ)."""
  size = like.shape[1]
  return optical if optical.shape[1] == size else np.stack([images.resize(image, size) for image in optical])
