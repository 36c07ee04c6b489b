"""Sliding-window tiles of an image of any size and their feathered, weighted blend (no file I/O).

A `TileGrid` places square tiles of the model's size every `tile - overlap` pixels from the top
left corner; the last tile of a row or column reaches past the image and is filled by reflection
(numpy's "reflect"), as is every tile of an image smaller than one tile. A tile-sized image is one
tile, so it translates exactly as it does whole.

The grid is walked one row of tiles at a time, so a scene never has to be in memory: `strip_rows`
says which image rows a row of tiles needs, `tile_row` cuts that strip into tiles, and a
`Blender` takes the translated tiles in grid order and releases each band of rows as soon as no
later tile touches it. Overlapping tiles are averaged with weights that ramp linearly across the
overlap, so the result is continuous across tile borders.
"""

import dataclasses
import functools
import math

import numpy as np


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
  """Indices into an axis of `size` for positions start..stop-1, mirrored at both ends (no edge repeat)."""
  positions = np.arange(start, stop)
  if size == 1:
    return np.zeros_like(positions)
  period = 2 * (size - 1)
  folded = np.mod(positions, period)
  return np.where(folded < size, folded, period - folded)


def feather_weights(tile: int, overlap: int) -> np.ndarray:
  """(tile, tile) blend weights: 1 inside, falling linearly to 1/(overlap + 1) across each overlap."""
  distance_to_edge = np.minimum(np.arange(tile), np.arange(tile)[::-1]) + 1
  ramp = np.minimum(distance_to_edge, overlap + 1) / (overlap + 1)
  return np.outer(ramp, ramp).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TileGrid:
  """Where the tiles of a `height` × `width` image lie: every `tile - overlap` pixels, row by row."""
  height: int
  width: int
  tile: int
  overlap: int

  def __post_init__(self):
    if min(self.height, self.width, self.tile) < 1:
      raise ValueError(f"image {self.height}x{self.width} and tile {self.tile} must be at least 1 pixel")
    if not 0 <= self.overlap < self.tile:
      raise ValueError(f"overlap must be in [0, tile={self.tile}), got {self.overlap}")

  @classmethod
  def with_overlap_fraction(cls, height: int, width: int, tile: int, fraction: float) -> "TileGrid":
    """A grid whose tiles overlap by `fraction` of their side (rounded to whole pixels)."""
    return cls(height, width, tile, round(fraction * tile))

  @property
  def stride(self) -> int:
    return self.tile - self.overlap

  def _origins(self, size: int) -> tuple[int, ...]:
    count = 1 + max(0, math.ceil((size - self.tile) / self.stride))
    return tuple(i * self.stride for i in range(count))

  @functools.cached_property
  def row_origins(self) -> tuple[int, ...]:
    return self._origins(self.height)

  @functools.cached_property
  def col_origins(self) -> tuple[int, ...]:
    return self._origins(self.width)

  @property
  def padded_width(self) -> int:
    return self.col_origins[-1] + self.tile

  def __len__(self) -> int:
    return len(self.row_origins) * len(self.col_origins)

  def strip_rows(self, row: int) -> tuple[int, int]:
    """Image rows [first, stop) that the tiles of grid row `row` are cut from (reflection included)."""
    rows = reflect_indices(self.row_origins[row], self.row_origins[row] + self.tile, self.height)
    return int(rows.min()), int(rows.max()) + 1

  def released_rows(self, row: int) -> tuple[int, int]:
    """Image rows [start, stop) that are final once grid row `row` is blended: no later tile touches them."""
    last = row == len(self.row_origins) - 1
    return self.row_origins[row], self.height if last else self.row_origins[row + 1]

  def tile_row(self, row: int, strip: np.ndarray) -> list[np.ndarray]:
    """The tiles (tile, tile, ...) of grid row `row`, cut from `strip` = image[first:stop] of `strip_rows`.

    Tiles are views of one band of the strip, reflected where the grid reaches past the image.
    """
    first, stop = self.strip_rows(row)
    origin = self.row_origins[row]
    rows = reflect_indices(origin, origin + self.tile, self.height) - first
    band = strip[rows[0]:rows[0] + self.tile] if rows[-1] - rows[0] == self.tile - 1 else strip[rows]
    if self.padded_width > self.width:
      band = np.concatenate([band, band[:, reflect_indices(self.width, self.padded_width, self.width)]], axis=1)
    return [band[:, x:x + self.tile] for x in self.col_origins]

  def tiles_with_data(self, row: int, mask_strip: np.ndarray) -> list[bool]:
    """For each tile of grid row `row`: whether `mask_strip` (image[first:stop] of `strip_rows`) is set in it."""
    columns = mask_strip.any(axis=0)[reflect_indices(0, self.padded_width, self.width)]
    return [bool(columns[x:x + self.tile].any()) for x in self.col_origins]


class Blender:
  """Weighted average of a grid's translated tiles, given in grid order; returns finished rows.

  Holds one tile-high band of the padded width, so memory does not grow with the image's height.
  """

  def __init__(self, grid: TileGrid, channels: int):
    self._grid = grid
    self._weights = feather_weights(grid.tile, grid.overlap)
    self._weighted = np.empty((grid.tile, grid.tile, channels), np.float32)  # scratch: weights × tile
    self._sum = np.zeros((grid.tile, grid.padded_width, channels), np.float32)
    self._weight_sum = np.zeros((grid.tile, grid.padded_width, 1), np.float32)
    self._added = 0

  def add(self, tile: np.ndarray | None) -> tuple[int, np.ndarray] | None:
    """Blends the next tile (tile, tile, channels); at the end of a grid row, (first row, finished rows).

    None stands for a tile that is not translated (it holds no valid pixel): it adds nothing, and
    pixels that no tile covers come out 0.
    """
    grid = self._grid
    row, col = divmod(self._added, len(grid.col_origins))
    if row >= len(grid.row_origins):
      raise ValueError(f"all {len(grid)} tiles of the grid were already added")
    if tile is not None:
      x = grid.col_origins[col]
      np.multiply(self._weights[..., None], tile, out=self._weighted)
      window, weight_window = self._sum[:, x:x + grid.tile], self._weight_sum[:, x:x + grid.tile, 0]
      np.add(window, self._weighted, out=window)
      np.add(weight_window, self._weights, out=weight_window)
    self._added += 1
    if col < len(grid.col_origins) - 1:
      return None
    start, stop = grid.released_rows(row)
    count = stop - start
    weight_sum = self._weight_sum[:count, :grid.width]
    finished = np.divide(self._sum[:count, :grid.width], weight_sum, where=weight_sum > 0,
                         out=np.zeros((count, grid.width, self._sum.shape[-1]), np.float32))
    for buffer in (self._sum, self._weight_sum):
      buffer[:grid.tile - count] = buffer[count:]
      buffer[grid.tile - count:] = 0
    return start, finished

  @property
  def done(self) -> bool:
    return self._added == len(self._grid)
