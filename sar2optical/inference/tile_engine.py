"""Translation of SAR images of any size (arrays, files, folders, globs; PNG, JPEG, TIFF, GeoTIFF) in tiles.

Each input is cut into overlapping tiles (`tiling`) of the ground the model's input covers in training:
image_size × pixel_scale input pixels, pixel_scale being the stored pixels per model pixel that the
checkpoint records (`checkpoints.metadata`; 1 for a crop-fit model, side/image_size for one trained on
resized pairs). A tile of another size than the model's is resampled to it (Pillow's bilinear, as
training resized its pairs) and the generator's output back to the tile's size (OpenCV's bilinear) before
blending, so the model always sees the ground resolution it learned. Rows of tiles are read one at a
time (`raster`), brought to the SEN1-2 8-bit convention (`pixels.SarScaling`) and translated in
batches that run across rows and files; finished rows are blended and written straight away, so
memory does not grow with the scene. Reading, translating, blending and writing overlap in
four threads (`_Translation`). Tiles without a valid pixel (nodata, zero fill) are not
translated. The output has the input's height and width; a GeoTIFF keeps its georeferencing, and
its nodata pixels are 0 and masked. An in-memory array takes the same path as a file, read and
written in memory (`translate_array`), so the notebook API and predict.py give the same bytes.
"""

import collections
import dataclasses
import functools
import glob
import itertools
import pathlib
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import cv2
import numpy as np
from absl import logging
from tqdm import tqdm

from sar2optical.core import storage
from sar2optical.core.errors import DataError, Sar2OpticalError
from sar2optical.data import images
from sar2optical.inference import raster, tiling
from sar2optical.inference.restore import TrainedGenerator
from sar2optical.model.pixels import PixelSpec, SarScaling

OUTPUT_FORMAT_CHOICES = ("auto", *raster.OUTPUT_FORMATS)
_READ_AHEAD = 2  # rows of tiles read before the generator asks for them
_BLEND_BEHIND = 2  # batches translated before they are blended
_WRITE_BEHIND = 2  # bands of finished rows before they are written
_END = object()


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
  pixel_scale: float  # input pixels per model pixel that it learned

  @property
  def image_size(self) -> int: ...

  @property
  def in_channels(self) -> int: ...

  def __call__(self, sar: np.ndarray) -> Any:
    """uint8 SAR (B, S, S, in_channels) → output (B, S, S, 3) in the model's range."""


@dataclasses.dataclass
class Summary:
  """What became of the inputs; `errors` holds the message of each failure, in order.

  Once an output fails on a full disk, no further input is started (`not_started`); `disk_full` then
  holds one line naming the folder, its free space and the space the outputs not written need.
  """
  translated: int = 0
  skipped: int = 0
  failed: int = 0
  not_started: int = 0
  errors: list[str] = dataclasses.field(default_factory=list)
  disk_full: str | None = None
  unwritten_bytes: int = 0  # uncompressed RGB of the inputs failed on the full disk or not started

  def fail(self, error: Sar2OpticalError) -> None:
    logging.error("Failed: %s", error)
    self.failed += 1
    self.errors.append(str(error))

  def __str__(self) -> str:
    text = f"translated {self.translated}, skipped {self.skipped}, failed {self.failed}"
    return text + (f", not started {self.not_started} (the disk is full)" if self.disk_full else "")


def tile_side(generator: TileGenerator) -> int:
  """The input pixels a tile spans: the generator's image_size at its pixel scale."""
  return round(generator.image_size * generator.pixel_scale)


def find_inputs(spec: str) -> list[tuple[str | pathlib.Path, pathlib.Path]]:
  """(input file, output path relative to the output folder) for a file, a folder (recursive) or a glob; for a
  raster's URL (`raster.REMOTE_SCHEMES`), that raster, named in the output folder as at the end of its URL."""
  if storage.is_remote(spec):
    return [(raster.remote_raster(spec, "--input"), pathlib.Path(raster.remote_name(spec)))]
  path = storage.local_path(spec, "--input")
  if path.is_file():
    return [(path, pathlib.Path(path.name))]
  if path.is_dir():
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES)
    base = path
  elif glob.has_magic(spec):
    files = sorted(pathlib.Path(p) for p in glob.glob(str(path), recursive=True) if pathlib.Path(p).is_file())
    base = pathlib.Path(*path.parts[:next(i for i, part in enumerate(path.parts) if glob.has_magic(part))])
  else:
    raise DataError(f"--input: {spec} is not a file, a folder or a glob that matches anything")
  if not files:
    raise DataError(f"--input: no images ({', '.join(images.IMAGE_SUFFIXES)}) in {spec}")
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


def _plan(inputs: Sequence[tuple[str | pathlib.Path, pathlib.Path]], output_dir: pathlib.Path, options: Options,
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


@dataclasses.dataclass(frozen=True)
class _Stopped:
  """In the tile stream: a job's remaining `missing` tiles will not come; `error` if its input failed."""
  missing: int
  error: Sar2OpticalError | None = None


_Item = np.ndarray | None | _Stopped  # a SAR tile; None for a tile without valid pixels; or the end of a job


class _Job:
  """One input being translated, its work split over three threads.

  The reading thread reads, scales and cuts the input (`tile_rows`) and alone touches the reader;
  the blending thread blends translated tiles, resampled to the grid's tile, into finished rows (`blend`);
  the writing thread alone touches the writer (`write`, `fail`). `failed`, set by the writing thread, stops
  the other two.
  """

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

  def tile_rows(self) -> Iterator[list[np.ndarray | None]]:
    """Each row of tiles: uint8 SAR (S, S, in_channels) at the model's size S, None for a tile without valid pixels."""
    grid, channels, size = self.task.grid, self._generator.in_channels, self._generator.image_size
    try:
      for row in range(len(grid.row_origins)):
        if self.failed:
          return
        first, stop = grid.strip_rows(row)
        values, valid = self._reader.read_rows(first, stop)
        pixels, backscatter_valid = self._sar.to_uint8(values)
        valid &= backscatter_valid
        start, end = grid.released_rows(row)
        self._valid_rows.append(valid[start - first:end - first])
        yield [images.repeat_band(images.resize(tile[..., None], size), channels) if with_data else None
               for tile, with_data in zip(grid.tile_row(row, pixels), grid.tiles_with_data(row, valid))]
    finally:
      self._reader.close()

  def blend(self, translated: np.ndarray | None) -> tuple[int, np.ndarray, np.ndarray] | None:
    """Blends the next translated tile; the rows it completes as (first row, uint8 RGB, valid), or None."""
    tile = self.task.grid.tile
    if translated is not None and translated.shape[0] != tile:
      translated = cv2.resize(np.asarray(translated, np.float32), (tile, tile), interpolation=cv2.INTER_LINEAR)
    released = self._blender.add(translated)
    if released is None:
      return None
    start, values = released
    valid = self._valid_rows.popleft()
    rgb = self._generator.pixels.to_uint8(values)
    rgb[~valid] = 0
    return start, rgb, valid

  def write(self, start: int, rgb: np.ndarray, valid: np.ndarray) -> bool:
    """Writes finished rows; True once the last is written and the output committed."""
    self._writer.write_rows(start, rgb, valid)
    if start + len(rgb) < self.task.grid.height:
      return False
    self._writer.commit()
    return True

  def fail(self) -> None:
    """Stops the reading and blending and drops the partial output."""
    self.failed = True
    self._writer.abort()


class _Stage:
  """A thread running the calls submitted to it in order, at most `depth` waiting; their errors reach the
  submitter. Submitted to from one thread only."""

  def __init__(self, name: str, depth: int):
    self._executor = ThreadPoolExecutor(1, name)
    self._pending: collections.deque[Future] = collections.deque()
    self._depth = depth

  def submit(self, function: Callable[..., Any], *args: Any) -> None:
    self._pending.append(self._executor.submit(function, *args))
    while len(self._pending) > self._depth:
      self._pending.popleft().result()

  def drain(self) -> None:
    """Waits until every submitted call has run."""
    while self._pending:
      self._pending.popleft().result()

  def close(self) -> None:
    self._executor.shutdown(cancel_futures=True)


class _Translation:
  """The tiles of all tasks as one stream, translated in batches, results routed back to their jobs.

  Four threads overlap: one reads, scales and cuts rows of tiles (`_READ_AHEAD` rows ahead); this
  one batches them and calls the generator (which returns before the device is done); one blends
  (`_BLEND_BEHIND` batches behind); one writes (`_WRITE_BEHIND` bands of rows behind). Memory stays
  bounded by those depths. The blending thread alone updates the progress bar, the writing thread
  alone the summary.
  """

  def __init__(self, generator: TileGenerator, options: Options, summary: Summary, progress: tqdm):
    self._generator, self._options, self._summary, self._progress = generator, options, summary, progress
    self._blending = _Stage("blend-tiles", _BLEND_BEHIND)
    self._writing = _Stage("write-rows", _WRITE_BEHIND)
    self.disk_full = False  # set by the writing thread when an output fails on a full disk

  def tile_rows(self, tasks: Sequence[_Task]) -> Iterator[list[tuple[_Job | None, _Item]]]:
    """Rows of (job, tile) over all tasks; a job that stops early ends with (job, _Stopped)."""
    for task in tasks:
      if self.disk_full:
        self._summary.not_started += 1
        self._summary.unwritten_bytes += task.grid.height * task.grid.width * 3
        yield [(None, _Stopped(len(task.grid)))]
        continue
      job, produced = None, 0
      try:
        job = _Job(task, self._options, self._generator)
        for row in job.tile_rows():
          produced += len(row)
          yield [(job, tile) for tile in row]
      except Sar2OpticalError as error:
        yield [(job, _Stopped(len(task.grid) - produced, error))]
        continue
      if produced < len(task.grid):  # the writing thread failed it
        yield [(job, _Stopped(len(task.grid) - produced))]

  def run(self, tasks: Sequence[_Task]) -> None:
    reading = ThreadPoolExecutor(1, "read-tiles")
    try:
      rows = _read_ahead(self.tile_rows(tasks), reading, _READ_AHEAD)
      for batch in _batched(itertools.chain.from_iterable(rows), self._options.batch_size):
        jobs, items = zip(*batch)
        self._blending.submit(self._blend, jobs, items, self._translate(items))
      self._blending.submit(self._writing.drain)
      self._blending.drain()
    finally:
      reading.shutdown(cancel_futures=True)
      self._blending.close()
      self._writing.close()

  def _translate(self, items: Sequence[_Item]) -> Any:
    """The generator's output for the tiles among `items`, padded to one compiled batch shape; None if none."""
    present = [item for item in items if isinstance(item, np.ndarray)]
    if not present:
      return None
    padding = [present[-1]] * (self._options.batch_size - len(present))
    return self._generator(np.stack(present + padding))

  def _blend(self, jobs: Sequence[_Job | None], items: Sequence[_Item], translated: Any) -> None:
    """In the blending thread: routes each output to its job, hands finished rows to the writing thread."""
    outputs = iter(np.asarray(translated) if translated is not None else ())
    for job, item in zip(jobs, items):
      if isinstance(item, _Stopped):
        self._progress.total -= item.missing
        self._progress.refresh()
        if item.error is not None:
          self._writing.submit(self._fail, job, item.error)
        continue
      output = None if item is None else next(outputs)
      self._progress.update(1)
      if not job.failed and (rows := job.blend(output)) is not None:
        self._writing.submit(self._write, job, *rows)

  def _write(self, job: _Job, start: int, rgb: np.ndarray, valid: np.ndarray) -> None:
    if job.failed:
      return
    try:
      if job.write(start, rgb, valid):
        self._summary.translated += 1
    except Sar2OpticalError as error:
      self._fail(job, error)

  def _fail(self, job: _Job | None, error: Sar2OpticalError) -> None:
    if job is not None:
      job.fail()
    self._summary.fail(error)
    if job is not None and storage.caused_by_full_disk(error):
      self._summary.unwritten_bytes += job.task.grid.height * job.task.grid.width * 3
      self.disk_full = True  # the reading thread starts no further input


def _read_ahead(items: Iterator, executor: ThreadPoolExecutor, depth: int) -> Iterator:
  """`items`, each computed in `executor`'s thread up to `depth` ahead of the consumer; errors re-raised here."""
  pending = collections.deque(executor.submit(next, items, _END) for _ in range(depth))
  while (item := pending.popleft().result()) is not _END:
    pending.append(executor.submit(next, items, _END))
    yield item


def translate_files(generator: TileGenerator, inputs: Sequence[tuple[str | pathlib.Path, pathlib.Path]],
                    output_dir: pathlib.Path, options: Options = Options()) -> Summary:
  """Translates every input into `output_dir / relative path` (suffix of the output format).

  Outputs have their input's height and width. An input that cannot be read or written is
  reported by path and counted failed while the others go on, but after an output failed on a full
  disk no further input starts (`Summary.disk_full`); existing outputs are skipped unless
  `options.overwrite`. Shows a progress bar with tiles/s and ETA on stderr.
  """
  summary = Summary()
  with raster.io_environment():
    tasks = _plan(inputs, output_dir, options, tile_side(generator), summary)
    disk_full = _run(generator, tasks, options, summary, f"{len(tasks)} images")
  if disk_full:
    summary.disk_full = (f"the disk of {output_dir} is full ({storage.megabytes(shutil.disk_usage(output_dir).free)} "
                         f"free, at most {storage.megabytes(summary.unwritten_bytes)} needed for the "
                         f"{summary.failed + summary.not_started} inputs not translated): free space there and run "
                         "the same command again (finished outputs are kept and skipped)")
  return summary


def translate_array(generator: TileGenerator, sar: np.ndarray, options: Options = Options(), *,
                    progress: bool = True) -> np.ndarray:
  """uint8 RGB (H, W, 3) for a SAR array (H, W) or (H, W, C) of any size, exactly as a file of it is translated.

  (H, W, 3 or 4) uint8 arrays are made grey as PNG/JPEG files are (Pillow's "L"); other (H, W, C)
  arrays give band `options.band` (1-based), as TIFF files do. Pixels that are not valid
  backscatter (`options.sar`) are 0. Raises DataError for values that do not fit the SAR units.
  `progress`: the progress bar on stderr.
  """
  reader = raster.ArrayReader(sar, options.band)
  _check_values(reader, options.sar)
  grid = tiling.TileGrid.with_overlap_fraction(reader.height, reader.width, tile_side(generator), options.overlap)
  sink = raster.ArraySink(reader.height, reader.width)
  summary = Summary()
  _run(generator, [_Task(lambda: reader, lambda _: sink, grid)], options, summary, "1 array" if progress else None)
  if summary.failed:
    raise DataError(summary.errors[0])
  return sink.rgb


def _run(generator: TileGenerator, tasks: Sequence[_Task], options: Options, summary: Summary,
         description: str | None) -> bool:
  """Translates `tasks`, counting in `summary`; whether an output failed on a full disk (and the rest stopped).

  A progress bar labelled `description` on stderr; None: none.
  """
  with tqdm(total=sum(len(task.grid) for task in tasks), unit="tile", mininterval=1.0,
            desc=description, disable=description is None) as progress:
    translation = _Translation(generator, options, summary, progress)
    translation.run(tasks)
  return translation.disk_full


class TiledTranslation:
  """`translate_array` of a checkpoint's network with the variables given at each call: what eval and training's
  validation score for a crop-fit model, so that their numbers are those of predict.py's outputs.

  Holds its own copy of `generator` (compiled once) and sets that copy's variables before each translation.
  """

  def __init__(self, generator: TrainedGenerator, options: Options):
    self._generator, self._options = dataclasses.replace(generator), options

  def __call__(self, g_params: Any, g_stats: Any, sar: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) for uint8 SAR (H, W), as predict.py writes it for a PNG of it."""
    self._generator.g_params, self._generator.g_stats = g_params, g_stats
    return translate_array(self._generator, sar, self._options, progress=False)


def scoring_translation(generator: TrainedGenerator, batch_size: int) -> TiledTranslation | None:
  """How eval and validation translate pairs (`metrics.scoring.Evaluator`'s `tiled`): for a crop-fit model, whole
  in predict.py's tiles of `batch_size` a call; None for a resize-fit one (pairs resized to its size, batched)."""
  return TiledTranslation(generator, Options(batch_size=batch_size)) if generator.config.data.fit == "crop" else None
