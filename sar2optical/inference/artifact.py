"""A generator exported as serialized StableHLO (`sar2optical-export`), read back as a tile generator.

The artifact is F (the serialized `jax.export.Exported`: uint8 SAR → uint8 RGB) with F.json beside it.
LOADER, `load_exported.py`, is the standalone program written next to every artifact (jax and numpy
only, so that whoever receives the artifact can run it without this package); this module reads
artifacts through it too, so the two cannot drift apart.
"""

import importlib.resources
import pathlib

import jax
import numpy as np

from sar2optical.core.errors import CheckpointError
from sar2optical.inference import load_exported
from sar2optical.model.pixels import PixelSpec

FORMAT = "jax.export serialized StableHLO"
LOADER = importlib.resources.files(__package__) / "load_exported.py"


class ExportedGenerator:
  """An artifact as a tile generator (`tile_engine.TileGenerator`): its uint8 output mapped back to the model's
  range, so predict's blending gives the artifact's pixels wherever tiles do not overlap, and within one level
  of the checkpoint's where they do. Its sidecar's `pixel_scale` (input pixels per model pixel) sizes the tiles."""

  def __init__(self, path: str | pathlib.Path):
    try:
      self._artifact = load_exported.load(path)
      if self._artifact.spec.get("format") != FORMAT:
        raise ValueError(f"its sidecar's format is {self._artifact.spec.get('format')!r}, not {FORMAT!r}")
      self.pixels = PixelSpec.from_dict(self._artifact.spec["pixels"])
      self.pixel_scale = float(self._artifact.spec.get("pixel_scale", 1.0))  # absent: exported before it was recorded
    except (OSError, ValueError, KeyError, TypeError, CheckpointError) as error:
      raise CheckpointError(f"{path} is not an artifact that this version's export reads (F with F.json beside "
                            f"it, written by `sar2optical-export`): {error}") from None
    self.step, self.image_size, self.in_channels = self._artifact.step, self._artifact.image_size, \
        self._artifact.in_channels

  def __call__(self, sar: np.ndarray) -> jax.Array:
    """uint8 SAR (B, S, S, C) → the artifact's RGB in the model's range."""
    return self.pixels.to_model(self._artifact.exported.call(sar))
