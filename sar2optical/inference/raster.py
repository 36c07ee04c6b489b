"""Image files in and out, a band of rows at a time: PNG/JPEG with Pillow, TIFF/GeoTIFF with rasterio.

Readers give one SAR band and where it is valid (the raster's nodata value, mask or alpha);
writers take uint8 RGB rows with that validity. GeoTIFFs are read and written in windows, so a
scene never has to fit in memory, and the output keeps the input's georeferencing: CRS and
transform, or ground control points. PNG and JPEG have no windowed access: they are decoded and
encoded whole. Every failure names the file. `ArrayReader` and `ArraySink` are the same interfaces
over numpy arrays, so that an array in memory is translated exactly as a file.
"""

import abc
import contextlib
import dataclasses
import importlib.util
import os
import pathlib
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from PIL import Image
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from sar2optical.core import storage
from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data.images import check_pixels, load_image

_PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Output format → file suffix.
OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif"}
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
_GEOTIFF_BLOCK = 256
# GDAL's block cache defaults to 5% of the machine's memory (6 GB on a 128 GB host); a band of rows
# needs a few MB, so a fixed cap keeps the memory of a scene's translation bounded.
_GDAL_CACHE_MB = 256
_IO_ERRORS = (rasterio.errors.RasterioError, OSError)
# A TIFF declaring more bytes of pixels than this many times its file size has a damaged or hostile header:
# deflate stops near 1000:1, and SAR scenes compress a few times at most. Reading it would take forever.
MAX_TIFF_EXPANSION = 10_000
# URLs of rasters that GDAL reads in windows (range requests) through its virtual file systems: /vsicurl/ for
# https and http, /vsigs/ for gs (GDAL's GS_* credentials), /vsis3/ for s3 (its AWS_* ones). rasterio maps them.
REMOTE_SCHEMES = ("https", "http", "gs", "s3")


def _remote_size(url: str) -> int | None:
  """The size of the object at `url`: Content-Length from one HEAD request, a gs:// object's size through gcsfs
  (when the gcs extra is there); None when it cannot be known that way (an s3:// object, a server that does not
  say)."""
  scheme = url.partition("://")[0]
  if scheme == "gs" and importlib.util.find_spec("gcsfs") is not None:
    try:
      return storage.object_size(url)
    except Exception as error:  # gcsfs's network, permission and not-found errors
      raise DataError(f"cannot open raster {url}: {storage.one_line(error)}") from None
  if scheme not in ("https", "http"):
    return None
  try:
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as response:
      length = response.headers.get("Content-Length", "")
  except OSError as error:
    raise DataError(f"cannot open raster {url}: {error}") from None
  return int(length) if length.isdigit() else None


def _reason(error: Exception) -> str:
  """The error's message with GDAL's own reason, which rasterio chains as the cause."""
  return f"{error} ({error.__cause__})" if error.__cause__ else str(error)


@contextlib.contextmanager
def io_environment() -> Iterator[None]:
  """GDAL settings for reading and writing: a bounded block cache and masks inside the GeoTIFF."""
  with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB, GDAL_TIFF_INTERNAL_MASK=True):
    yield


@dataclasses.dataclass(frozen=True)
class Georeference:
  """Where a raster lies on the ground: a CRS with an affine transform, and/or ground control points."""
  crs: CRS | None = None
  transform: Affine | None = None
  gcps: tuple[GroundControlPoint, ...] = ()
  gcps_crs: CRS | None = None

  def __bool__(self) -> bool:
    """True when there is any georeferencing to keep."""
    return self.transform is not None or bool(self.gcps)


class SarReader(abc.ABC):
  """One band of an image file (or an array: `path` then says which), read a band of rows at a time."""

  def __init__(self, path: pathlib.Path | str, height: int, width: int, dtype: np.dtype,
               georeference: Georeference):
    self.path, self.height, self.width, self.dtype, self.georeference = path, height, width, dtype, georeference

  @abc.abstractmethod
  def read_rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (rows, width), valid (rows, width) bool) of image rows [start, stop)."""

  def close(self) -> None:
    """Releases the file."""

  def __enter__(self) -> "SarReader":
    return self

  def __exit__(self, *exc_info: Any) -> None:
    self.close()


class _PillowReader(SarReader):
  """PNG/JPEG, converted to grey exactly as training loads SAR (`load_image`); decoded on first read."""

  def __init__(self, path: pathlib.Path):
    try:
      with Image.open(path) as image:
        width, height = image.size
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
      raise DataError(f"cannot decode image {path}: {error}") from None
    check_pixels(width, height, str(path))
    super().__init__(path, height, width, np.dtype(np.uint8), Georeference())
    self._pixels: np.ndarray | None = None

  def read_rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    if self._pixels is None:
      self._pixels = load_image(self.path, "L", None)[..., 0]
    rows = self._pixels[start:stop]
    return rows, np.ones(rows.shape, bool)


class _RasterioReader(SarReader):
  """TIFF/GeoTIFF band `band` (1-based index or band description), read in windows."""

  def __init__(self, path: pathlib.Path | str, band: str):
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        # A URL: no listing of its "folder" for side-car files (requests saved; most servers refuse a listing).
        remote = isinstance(path, str)
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR") if remote else contextlib.nullcontext():
          self._dataset = rasterio.open(path)
    except _IO_ERRORS as error:
      raise DataError(f"cannot open raster {path}: {_reason(error)}") from None
    dataset = self._dataset
    try:
      _check_declared_size(dataset, path)
      self._band = _band_index(dataset, band, path)
    except DataError:
      dataset.close()
      raise
    gcps, gcps_crs = dataset.gcps
    has_transform = dataset.crs is not None or not dataset.transform.is_identity
    georeference = Georeference(dataset.crs, dataset.transform if has_transform else None, tuple(gcps), gcps_crs)
    super().__init__(path, dataset.height, dataset.width, np.dtype(dataset.dtypes[self._band - 1]), georeference)

  def read_rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    window = Window(0, start, self.width, stop - start)
    try:
      values = self._dataset.read(self._band, window=window)
      valid = self._dataset.read_masks(self._band, window=window) > 0
    except _IO_ERRORS as error:
      raise DataError(f"cannot read rows {start}-{stop} of {self.path}: {_reason(error)}") from None
    return values, valid

  def close(self) -> None:
    self._dataset.close()


def _check_declared_size(dataset: rasterio.DatasetReader, path: pathlib.Path | str) -> None:
  """DataError when the pixels `dataset` declares exceed MAX_TIFF_EXPANSION times its file's size."""
  declared = dataset.width * dataset.height * sum(np.dtype(dtype).itemsize for dtype in dataset.dtypes)
  size = _remote_size(path) if isinstance(path, str) else path.stat().st_size
  if size is None:  # a server that does not say
    return
  if declared > MAX_TIFF_EXPANSION * size:
    raise DataError(f"{path} declares {dataset.width}x{dataset.height} pixels in {dataset.count} bands "
                    f"({declared / 2**30:.1f} GiB) in a file of {size / 2**20:.2f} MiB, more than "
                    f"{MAX_TIFF_EXPANSION} times its size: its header is damaged")


def _band_index(dataset: rasterio.DatasetReader, band: str, path: pathlib.Path | str) -> int:
  """The 1-based index of `band`: a number, or a band description such as VV (case-insensitive)."""
  names = [description or "" for description in dataset.descriptions]
  listing = ", ".join(f"{i} {name!r}" if name else str(i) for i, name in enumerate(names, 1))
  if band.isdigit() and 1 <= int(band) <= dataset.count:
    return int(band)
  matches = [i for i, name in enumerate(names, 1) if name.lower() == band.lower()]
  if not matches:
    raise DataError(f"{path}: no band {band!r} (bands: {listing}); set --band to an index or a description")
  return matches[0]


class ArrayReader(SarReader):
  """A SAR array (H, W) or (H, W, C) in memory; (H, W, 3) uint8 is made grey as PNG/JPEG files are."""

  def __init__(self, sar: np.ndarray, band: str = "1", name: str = "the SAR array"):
    sar = np.asarray(sar)
    if sar.ndim == 3 and sar.dtype == np.uint8 and sar.shape[2] == 3:
      sar = np.asarray(Image.fromarray(sar).convert("L"))
    elif sar.ndim == 3:
      if not (band.isdigit() and 1 <= int(band) <= sar.shape[2]):
        raise DataError(f"{name} has {sar.shape[2]} bands (H, W, C = {sar.shape}); band must be 1..{sar.shape[2]}, "
                        f"got {band!r}")
      sar = sar[..., int(band) - 1]
    if sar.ndim != 2 or min(sar.shape) < 1:
      raise DataError(f"{name} must be an image (H, W) or (H, W, C), got shape {sar.shape}")
    super().__init__(name, *sar.shape, sar.dtype, Georeference())
    self._sar = sar

  def read_rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    rows = self._sar[start:stop]
    return rows, np.ones(rows.shape, bool)


def remote_raster(url: str, what: str) -> str:
  """`url` when it names one raster that GDAL reads in windows (`REMOTE_SCHEMES`); ConfigError naming `what`
  otherwise."""
  scheme = url.partition("://")[0]
  if scheme not in REMOTE_SCHEMES:
    raise ConfigError(f"{what} {url}: {scheme}:// rasters are not read here; use a local path or a "
                      f"{', '.join(scheme + '://' for scheme in REMOTE_SCHEMES)} URL")
  if not remote_name(url):
    raise ConfigError(f"{what} {url}: name one raster (a URL is read as one file, not as a folder)")
  return url


def remote_name(url: str) -> str:
  """The file name at the end of `url`'s path, without its query string."""
  return pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name


def open_sar(path: str | os.PathLike[str], band: str = "1") -> SarReader:
  """A reader of `path`'s SAR band; PNG/JPEG are converted to grey (`band` applies to TIFF). A URL
  (`REMOTE_SCHEMES`: a Cloud-Optimised GeoTIFF, say) is read by GDAL in windows, with range requests, and
  never downloaded whole first."""
  if storage.is_remote(path):
    return _RasterioReader(os.fspath(path), band)
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"image file not found: {path}")
  if path.suffix.lower() in _PILLOW_SUFFIXES:
    return _PillowReader(path)
  return _RasterioReader(path, band)


class RgbSink(abc.ABC):
  """Where a uint8 RGB image goes, a band of rows at a time; complete after `commit`."""

  @abc.abstractmethod
  def write_rows(self, start: int, rgb: np.ndarray, valid: np.ndarray) -> None:
    """Writes uint8 `rgb` (rows, width, 3) at image row `start`; `valid` (rows, width) marks data."""

  @abc.abstractmethod
  def commit(self) -> None:
    """Completes the image."""

  @abc.abstractmethod
  def abort(self) -> None:
    """Drops what was written."""


class ArraySink(RgbSink):
  """The image as the array `rgb` (H, W, 3)."""

  def __init__(self, height: int, width: int):
    self.rgb = np.zeros((height, width, 3), np.uint8)

  def write_rows(self, start: int, rgb: np.ndarray, valid: np.ndarray) -> None:
    self.rgb[start:start + len(rgb)] = rgb

  def commit(self) -> None:
    pass

  def abort(self) -> None:
    self.rgb[...] = 0


class RgbWriter(RgbSink):
  """A uint8 RGB image written a band of rows at a time into a temporary file, renamed on `commit`."""

  def __init__(self, path: storage.Path):
    self.path = path
    path.parent.mkdir(parents=True, exist_ok=True)
    self._partial = storage.staging_name(path)

  @abc.abstractmethod
  def _finish(self) -> None:
    """Completes and closes the temporary file."""

  def _release(self) -> None:
    """Closes the temporary file without completing it."""

  def commit(self) -> None:
    """Completes the file and moves it to `path`."""
    try:
      self._finish()
      storage.publish(self._partial, self.path)
    except _IO_ERRORS as error:
      storage.discard(self._partial, self.path)
      raise DataError(f"cannot write {self.path}: {_reason(error)}") from None

  def abort(self) -> None:
    """Drops the partial file."""
    with contextlib.suppress(*_IO_ERRORS):
      self._release()
    storage.discard(self._partial, self.path)


class _PillowWriter(RgbWriter):
  """PNG or JPEG: rows are collected in memory (3 bytes a pixel) and encoded at the end."""

  def __init__(self, path: pathlib.Path, output_format: str, height: int, width: int):
    super().__init__(path)
    self._format = _PILLOW_FORMATS[output_format]
    self._image = ArraySink(height, width)

  def write_rows(self, start: int, rgb: np.ndarray, valid: np.ndarray) -> None:
    self._image.write_rows(start, rgb, valid)

  def _finish(self) -> None:
    options = {"quality": 95} if self._format == "JPEG" else {}
    Image.fromarray(self._image.rgb).save(self._partial, format=self._format, **options)


class _GeoTiffWriter(RgbWriter):
  """Tiled, deflate-compressed RGB GeoTIFF with the input's georeferencing and an internal mask for nodata."""

  def __init__(self, path: pathlib.Path, height: int, width: int, georeference: Georeference):
    super().__init__(path)
    # Deflate (readable everywhere GeoTIFF is) compressed by GDAL's worker threads, one block each, so that
    # the compression keeps up with a device on a many-core host.
    profile = dict(driver="GTiff", height=height, width=width, count=3, dtype="uint8", photometric="RGB",
                   tiled=True, blockxsize=_GEOTIFF_BLOCK, blockysize=_GEOTIFF_BLOCK, compress="deflate",
                   predictor=2, num_threads="ALL_CPUS", BIGTIFF="IF_SAFER")
    if georeference.transform is not None:
      profile.update(crs=georeference.crs, transform=georeference.transform)
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        self._dataset = rasterio.open(self._partial, "w", **profile)
      if georeference.gcps:
        self._dataset.gcps = (list(georeference.gcps), georeference.gcps_crs)
    except _IO_ERRORS as error:
      raise DataError(f"cannot create {path}: {_reason(error)}") from None

  def write_rows(self, start: int, rgb: np.ndarray, valid: np.ndarray) -> None:
    window = Window(0, start, rgb.shape[1], len(rgb))
    try:
      self._dataset.write(np.moveaxis(rgb, -1, 0), window=window)
      self._dataset.write_mask(np.where(valid, np.uint8(255), np.uint8(0)), window=window)
    except _IO_ERRORS as error:
      raise DataError(f"cannot write rows {start}-{start + len(rgb)} of {self.path}: {_reason(error)}") from None

  def _finish(self) -> None:
    self._dataset.close()

  _release = _finish


def create_writer(path: pathlib.Path, output_format: str, height: int, width: int,
                  georeference: Georeference) -> RgbWriter:
  """A writer of `output_format` ("png", "jpeg" or "tiff"); only TIFF keeps georeferencing and nodata."""
  if output_format == "tiff":
    return _GeoTiffWriter(path, height, width, georeference)
  return _PillowWriter(path, output_format, height, width)


def rgb_rows(path: pathlib.Path, rows: int) -> Iterator[tuple[int, np.ndarray]]:
  """(first row, uint8 RGB (≤ rows, width, 3)) of a 3-band raster (a GeoTIFF `create_writer` wrote), from the top."""
  try:
    with rasterio.open(path) as dataset:
      for start in range(0, dataset.height, rows):
        window = Window(0, start, dataset.width, min(rows, dataset.height - start))
        yield start, np.moveaxis(dataset.read((1, 2, 3), window=window), 0, -1)
  except _IO_ERRORS as error:
    raise DataError(f"cannot read {path}: {_reason(error)}") from None
