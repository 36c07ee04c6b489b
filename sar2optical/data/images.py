"""Decodes SAR and optical images into uint8 arrays.

OpenCV decodes PNGs stored in the wanted mode (8-bit grey or RGB, as SEN1-2's), faster than
Pillow; other 8-bit images (other formats, palette, grey for RGB or RGB for grey) go through
Pillow's conversion. PNG is lossless, so both give the same pixels. Images with more than 8 bits
or with an alpha channel are refused, naming the file: converting them would clip or drop data.
So are images declaring more pixels than Pillow's `PIL.Image.MAX_IMAGE_PIXELS` (89.5 million unless
set otherwise), before anything is decoded: a few kilobytes of PNG can declare gigabytes of pixels.
"""

import io
import os
import struct

import cv2
import numpy as np
from PIL import Image

from sar2optical.core import storage
from sar2optical.core.errors import ConfigError, DataError

#: The image files the toolkit reads, training pairs and predict's inputs alike (TIFFs through rasterio there).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

_CHANNELS = {"L": 1, "RGB": 3}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV", *_ALPHA_MODES)


def load_image(path: str | os.PathLike[str], mode: str, image_size: int | None) -> np.ndarray:
  """Returns the image at `path` as uint8 (H, W, C), C = 1 for mode "L" and 3 for "RGB".

  Args:
    path: image file readable by OpenCV or Pillow.
    mode: "L" (grey) or "RGB"; the image is converted to it.
    image_size: resize (bilinear) to image_size x image_size when the size differs;
      None keeps the stored size.
  """
  path = storage.as_path(path, "the image")
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    raise DataError(f"image file not found: {path}") from None
  except Exception as error:  # OSError, or a bucket client's network and permission errors
    raise DataError(f"cannot read image {path}: {storage.one_line(error)}") from None
  image = decode_image(data, mode, str(path))
  return image if image_size is None else resize(image, image_size)


def decode_image(data: bytes, mode: str, name: str) -> np.ndarray:
  """Returns encoded image bytes (PNG, ...) as uint8 (H, W, C) in `mode`; errors name `name`."""
  if mode not in _CHANNELS:
    raise ValueError(f"mode must be one of {sorted(_CHANNELS)}, got {mode!r}")
  is_png = data.startswith(_PNG_SIGNATURE)
  if is_png and len(data) >= 24:  # IHDR, always first: width and height at bytes 16-24
    check_pixels(*struct.unpack(">II", data[16:24]), name)
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if is_png else None
  if image is not None:
    _refuse(name, bits=8 * image.dtype.itemsize, alpha=image.ndim == 3 and image.shape[2] in (2, 4))
    if mode == "L" and image.ndim == 2:
      return image[..., np.newaxis]
    if mode == "RGB" and image.ndim == 3 and image.shape[2] == 3:
      return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
  return _decode_with_pillow(data, mode, name)


def check_pixels(width: int, height: int, name: str) -> None:
  """DataError naming `name` when an image declares more than `PIL.Image.MAX_IMAGE_PIXELS` pixels."""
  limit = Image.MAX_IMAGE_PIXELS
  if limit and width * height > limit:
    raise DataError(f"image {name} declares {width}x{height} pixels, more than the {limit} that PNG and JPEG "
                    "files may have here (PIL.Image.MAX_IMAGE_PIXELS): they are decoded whole; a tiled GeoTIFF "
                    "of any size is read in windows")


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 (H, W, C) to (size, size, C) with Pillow's bilinear filter; `image` if it fits."""
  if image.shape[:2] == (size, size):
    return image
  resized = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).resize((size, size), Image.BILINEAR)
  return np.asarray(resized).reshape(size, size, image.shape[-1])


def repeat_band(image: np.ndarray, channels: int) -> np.ndarray:
  """Grey uint8 (H, W, 1) as (H, W, channels), the band repeated; channels is 1 or 3.

  OpenCV's grey-to-RGB conversion copies the band fifteen times as fast as np.repeat.
  """
  if channels == 1:
    return image
  if channels == 3:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
  raise ConfigError(f"in_channels must be 1 or 3, got {channels}")


def _refuse(name: str, *, bits: int, alpha: bool) -> None:
  """DataError naming `name` for an image of more than 8 bits per sample or with an alpha channel."""
  if bits > 8:
    raise DataError(f"image {name} has {bits}-bit samples; 8-bit grey or RGB is expected (as SEN1-2's PNGs): "
                    "scale it to 0..255 first")
  if alpha:
    raise DataError(f"image {name} has an alpha channel; 8-bit grey or RGB is expected (as SEN1-2's PNGs)")


def check_pair(sar: np.ndarray, optical: np.ndarray, sar_name: str, optical_name: str) -> dict[str, np.ndarray]:
  """{"sar", "optical"} once both are known square and of one size; DataError naming the files otherwise."""
  (sar_height, sar_width), (height, width) = sar.shape[:2], optical.shape[:2]
  if (sar_height, sar_width) != (height, width):
    raise DataError(f"SAR image {sar_name} is {sar_width}x{sar_height} but its optical twin {optical_name} is "
                    f"{width}x{height}: the two images of a pair must have one size")
  if height != width:
    raise DataError(f"SAR image {sar_name} and its optical twin are {width}x{height}: square images are expected "
                    "(SEN1-2 patches are 256x256)")
  return {"sar": sar, "optical": optical}


def _decode_with_pillow(data: bytes, mode: str, name: str) -> np.ndarray:
  """Fully decodes `data` with Pillow and converts it to `mode`; DataError naming `name` if it cannot."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      check_pixels(*image.size, name)
      image.load()
      bits = 8 if image.mode in _EIGHT_BIT_MODES else 32 if image.mode in ("I", "F") else 16
      alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
      converted = image.convert(mode)
  except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
    raise DataError(f"cannot decode image {name}: {error}") from None
  _refuse(name, bits=bits, alpha=alpha)
  return np.asarray(converted, dtype=np.uint8).reshape(converted.height, converted.width, _CHANNELS[mode])

