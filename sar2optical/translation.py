"""Translation of SAR images of any size (arrays, files, folders, globs; PNG, JPEG, TIFF, GeoTIFF) in tiles.

Each input is cut into overlapping tiles of the model's size (`tiling`), read a row of tiles at a
time (`raster`), brought to the SEN1-2 8-bit convention (`pixels.SarScaling`) and translated in
batches that run across rows and files; finished rows are blended and written straight away, so
memory does not grow with the scene. Tiles without a valid pixel (nodata, zero fill) are not
translated. The output has the input's height and width; a GeoTIFF keeps its georeferencing, and
its nodata pixels are 0 and masked. An in-memory array takes the same path as a file, read and
written in memory (`translate_array`), so the notebook API and predict.py give the same bytes.
"""

import collections
import dataclasses
import glob
import functools
import itertools
import pathlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
from absl import logging
from tqdm import tqdm

from sar2optical import raster, tiling
from sar2optical.errors import DataError, Sar2OpticalError
from sar2optical.pixels import PixelSpec, SarScaling

OUTPUT_FORMAT_CHOICES = ("auto", *raster.OUTPUT_FORMATS)


@dataclasses.dataclass(frozen=True)
class Options:
  """How inputs are read, tiled and written.

  Attributes:
    sar: what the SAR values are (uint8 SEN1-2, linear or dB backscatter) and the dB range.
    band: the TIFF band to translate, a 1-based index or a description such as VV.
    overlap: fraction of a tile's side that neighbouring tiles share.
    batch_size: tiles per generator call.
    output_format: png, jpeg, tiff, or auto (tiff for georeferenced inputs, png otherwise).
    overwrite: replace existing outputs instead of skipping them.
  """
  sar: SarScaling = SarScaling()
  band: str = "1"
  overlap: float = 0.25
  batch_size: int = 8
  output_format: str = "auto"
  overwrite: bool = False


class TileGenerator(Protocol):
  """What translates tiles: a checkpoint's generator (`TrainedGenerator`) or an exported artifact."""
  pixels: PixelSpec
  step: int

  @property
  def image_size(self) -> int: ...

  @property
  def in_channels(self) -> int: ...

  def __call__(self, sar: np.ndarray) -> Any:
    """uint8 SAR (B, S, S, in_channels) → output (B, S, S, 3) in the model's range."""


@dataclasses.dataclass
class Summary:
  """What became of the inputs; `errors` holds the message of each failure, in order."""
  translated: int = 0
  skipped: int = 0
  failed: int = 0
  errors: list[str] = dataclasses.field(default_factory=list)

  def fail(self, error: Sar2OpticalError) -> None:
    logging.error("Failed: %s", error)
    self.failed += 1
    self.errors.append(str(error))

  def __str__(self) -> str:
    return f"translated {self.translated}, skipped {self.skipped}, failed {self.failed}"


def find_inputs(spec: str) -> list[tuple[pathlib.Path, pathlib.Path]]:
  """(input file, output path relative to the output folder) for a file, a folder (recursive) or a glob."""
  path = pathlib.Path(spec).expanduser()
  if path.is_file():
    return [(path, pathlib.Path(path.name))]
  if path.is_dir():
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in raster.INPUT_SUFFIXES)
    base = path
  elif glob.has_magic(spec):
    files = sorted(pathlib.Path(p) for p in glob.glob(str(path), recursive=True) if pathlib.Path(p).is_file())
    base = pathlib.Path(*path.parts[:next(i for i, part in enumerate(path.parts) if glob.has_magic(part))])
  else:
    raise DataError(f"--input: {spec} is not a file, a folder or a glob that matches anything")
  if not files:
    raise DataError(f"--input: no images ({', '.join(raster.INPUT_SUFFIXES)}) in {spec}")
  return [(f, f.relative_to(base)) for f in files]


def _batched(items: Iterable, size: int) -> Iterator[tuple]:
  """itertools.batched of Python 3.12."""
  iterator = iter(items)
  while batch := tuple(itertools.islice(iterator, size)):
    yield batch


@dataclasses.dataclass(frozen=True)
class _Task:
  """One input to translate: how to open it, how to create its output from the opened input, its tiles."""
  open_reader: Callable[[], raster.SarReader]
  create_writer: Callable[[raster.SarReader], raster.RgbSink]
  grid: tiling.TileGrid


def _check_values(reader: raster.SarReader, sar: SarScaling) -> None:
  """8-bit data are SEN1-2 images (--sar_units=uint8); calibrated backscatter is float or 16-bit."""
  eight_bit = reader.dtype == np.uint8
  if sar.units == "uint8" and not eight_bit:
    raise DataError(f"{reader.path} holds {reader.dtype} values, but sar_units=uint8 expects 8-bit SEN1-2 "
                    "images: set sar_units=linear or sar_units=db (--sar_units) for calibrated backscatter")
  if sar.units != "uint8" and eight_bit:
    raise DataError(f"{reader.path} holds 8-bit values, but sar_units={sar.units} expects calibrated "
                    "backscatter (float or 16-bit): set sar_units=uint8 (--sar_units) for SEN1-2 images")


def _plan(inputs: Sequence[tuple[pathlib.Path, pathlib.Path]], output_dir: pathlib.Path, options: Options,
          tile: int, summary: Summary) -> list[_Task]:
  """The inputs to translate; unreadable ones are counted failed, existing outputs skipped."""
  tasks, sources_of = [], {}
  for source, relative in inputs:
    try:
      with raster.open_sar(source, options.band) as reader:
        _check_values(reader, options.sar)
        output_format = options.output_format
        if output_format == "auto":
          output_format = "tiff" if reader.georeference else "png"
        grid = tiling.TileGrid.with_overlap_fraction(reader.height, reader.width, tile, options.overlap)
      target = (output_dir / relative).with_suffix(raster.OUTPUT_FORMATS[output_format])
      if target in sources_of:
        raise DataError(f"{source} and {sources_of[target]} would both be written to {target}")
    except Sar2OpticalError as error:
      summary.fail(error)
      continue
    sources_of[target] = source
    if target.exists() and not options.overwrite:
      logging.info("Skipping %s: %s exists (use --overwrite)", source, target)
      summary.skipped += 1
    else:
      tasks.append(_Task(functools.partial(raster.open_sar, source, options.band),
                         functools.partial(_file_writer, target, output_format), grid))
  return tasks


def _file_writer(target: pathlib.Path, output_format: str, reader: raster.SarReader) -> raster.RgbWriter:
  return raster.create_writer(target, output_format, reader.height, reader.width, reader.georeference)


class _Job:
  """One input being translated: reader → SAR tiles; translated tiles → blender → writer."""

  def __init__(self, task: _Task, options: Options, generator: TileGenerator):
    self.task = task
    self.failed = False
    self._sar = options.sar
    self._generator = generator
    self._blender = tiling.Blender(task.grid, channels=3)
    self._valid_rows: collections.deque[np.ndarray] = collections.deque()
    self._reader = task.open_reader()
    try:
      self._writer = task.create_writer(self._reader)
    except Sar2OpticalError:
      self._reader.close()
      raise

  def tiles(self) -> Iterator[np.ndarray | None]:
    """uint8 SAR tiles (tile, tile, in_channels) in grid order, None for a tile without valid pixels."""
    grid = self.task.grid
    for row in range(len(grid.row_origins)):
      if self.failed:
        return
      first, stop = grid.strip_rows(row)
      values, valid = self._reader.read_rows(first, stop)
      pixels, backscatter_valid = self._sar.to_uint8(values)
      valid &= backscatter_valid
      start, end = grid.released_rows(row)
      self._valid_rows.append(valid[start - first:end - first])
      for tile, tile_valid in zip(grid.tile_row(row, pixels), grid.tile_row(row, valid)):
        yield np.repeat(tile[..., None], self._generator.in_channels, axis=-1) if tile_valid.any() else None
    self._reader.close()

  def add(self, translated: np.ndarray | None) -> bool:
    """Blends the next translated tile and writes the rows it completes; True once the output is written."""
    released = self._blender.add(translated)
    if released is not None:
      start, values = released
      valid = self._valid_rows.popleft()
      rgb = self._generator.pixels.to_uint8(values)
      rgb[~valid] = 0
      self._writer.write_rows(start, rgb, valid)
    if not self._blender.done:
      return False
    self._writer.commit()
    return True

  def fail(self) -> None:
    """Stops reading and drops the partial output."""
    self.failed = True
    self._reader.close()
    self._writer.abort()


class _Translation:
  """The tiles of all tasks as one stream, translated in batches, results routed back to their jobs."""

  def __init__(self, generator: TileGenerator, options: Options, summary: Summary, progress: tqdm):
    self._generator, self._options, self._summary, self._progress = generator, options, summary, progress

  def tiles(self, tasks: Sequence[_Task]) -> Iterator[tuple[_Job, np.ndarray]]:
    for task in tasks:
      job, produced = None, 0
      try:
        job = _Job(task, self._options, self._generator)
        for tile in job.tiles():
          produced += 1
          yield job, tile
      except Sar2OpticalError as error:
        if job is not None:
          job.fail()
        self._summary.fail(error)
      if produced < len(task.grid):  # failed: its other tiles will not come
        self._progress.total -= len(task.grid) - produced
        self._progress.refresh()

  def run(self, tasks: Sequence[_Task]) -> None:
    """Keeps one batch in flight while the next is read and the previous one written."""
    batch_size = self._options.batch_size
    in_flight = collections.deque()
    for batch in _batched(self.tiles(tasks), batch_size):
      jobs, tiles = zip(*batch)
      present = [tile for tile in tiles if tile is not None]
      translated = None
      if present:
        padding = [present[-1]] * (batch_size - len(present))  # one compiled shape
        translated = self._generator(np.stack(present + padding))
      in_flight.append((jobs, tiles, translated))
      if len(in_flight) > 1:
        self._deliver(*in_flight.popleft())
    while in_flight:
      self._deliver(*in_flight.popleft())

  def _deliver(self, jobs: Sequence[_Job], tiles: Sequence[np.ndarray | None], translated) -> None:
    outputs = iter(np.asarray(translated) if translated is not None else ())
    for job, tile in zip(jobs, tiles):
      output = None if tile is None else next(outputs)
      if job.failed:
        continue
      try:
        if job.add(output):
          self._summary.translated += 1
      except Sar2OpticalError as error:
        job.fail()
        self._summary.fail(error)
    self._progress.update(len(jobs))


def translate_files(generator: TileGenerator, inputs: Sequence[tuple[pathlib.Path, pathlib.Path]],
                    output_dir: pathlib.Path, options: Options = Options()) -> Summary:
  """Translates every input into `output_dir / relative path` (suffix of the output format).

  Outputs have their input's height and width. An input that cannot be read or written is
  reported by path and counted failed while the others go on; existing outputs are skipped
  unless `options.overwrite`. Shows a progress bar with tiles/s and ETA on stderr.
  """
  summary = Summary()
  with raster.io_environment():
    tasks = _plan(inputs, output_dir, options, generator.image_size, summary)
    _run(generator, tasks, options, summary, f"{len(tasks)} images")
  return summary


def translate_array(generator: TileGenerator, sar: np.ndarray, options: Options = Options()) -> np.ndarray:
  """uint8 RGB (H, W, 3) for a SAR array (H, W) or (H, W, C) of any size, exactly as a file of it is translated.

  (H, W, 3 or 4) uint8 arrays are made grey as PNG/JPEG files are (Pillow's "L"); other (H, W, C)
  arrays give band `options.band` (1-based), as TIFF files do. Pixels that are not valid
  backscatter (`options.sar`) are 0. Raises DataError for values that do not fit the SAR units.
  """
  reader = raster.ArrayReader(sar, options.band)
  _check_values(reader, options.sar)
  grid = tiling.TileGrid.with_overlap_fraction(reader.height, reader.width, generator.image_size, options.overlap)
  sink = raster.ArraySink(reader.height, reader.width)
  summary = Summary()
  _run(generator, [_Task(lambda: reader, lambda _: sink, grid)], options, summary, "1 array")
  if summary.failed:
    raise DataError(summary.errors[0])
  return sink.rgb


def _run(generator: TileGenerator, tasks: Sequence[_Task], options: Options, summary: Summary,
         description: str) -> None:
  with tqdm(total=sum(len(task.grid) for task in tasks), unit="tile", mininterval=1.0,
            desc=description) as progress:
    _Translation(generator, options, summary, progress).run(tasks)
