"""Decodes SAR and optical images into uint8 arrays."""

import os
import pathlib

import numpy as np
from PIL import Image

from sar2optical.data.pairs import Pair
from sar2optical.errors import ConfigError, DataError

_CHANNELS = {"L": 1, "RGB": 3}


def load_image(path: str | os.PathLike[str], mode: str, image_size: int | None) -> np.ndarray:
  """Returns the image at `path` as uint8 (H, W, C), C = 1 for mode "L" and 3 for "RGB".

  Args:
    path: image file readable by Pillow.
    mode: "L" (grey) or "RGB"; the image is converted to it.
    image_size: resize (bilinear) to image_size x image_size when the size differs;
      None keeps the stored size.
  """
  if mode not in _CHANNELS:
    raise ValueError(f"mode must be one of {sorted(_CHANNELS)}, got {mode!r}")
  path = pathlib.Path(path)
  try:
    with Image.open(path) as image:
      image.load()
      image = image.convert(mode)
  except FileNotFoundError:
    raise DataError(f"image file not found: {path}") from None
  except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
    raise DataError(f"cannot decode image {path}: {error}") from None
  if image_size is not None and image.size != (image_size, image_size):
    image = image.resize((image_size, image_size), Image.BILINEAR)
  return np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, _CHANNELS[mode])


def load_pair(
    root: str | os.PathLike[str],
    pair: Pair,
    image_size: int | None,
    in_channels: int,
) -> dict[str, np.ndarray]:
  """Returns {"sar": uint8 (S, S, in_channels), "optical": uint8 (S, S, 3)} for `pair`.

  Args:
    root: data root that `pair`'s paths are relative to.
    pair: the pair to load.
    image_size: side length S of both images; None keeps the stored size.
    in_channels: 1, or 3 to repeat the SAR band (as the original PyTorch checkpoints expect).
  """
  if in_channels not in (1, 3):
    raise ConfigError(f"in_channels must be 1 or 3, got {in_channels}")
  root = pathlib.Path(root)
  sar = load_image(root / pair.s1, "L", image_size)
  optical = load_image(root / pair.s2, "RGB", image_size)
  if sar.shape[:2] != optical.shape[:2]:
    raise DataError(
        f"SAR image {root / pair.s1} is {sar.shape[1]}x{sar.shape[0]} but its optical twin "
        f"{root / pair.s2} is {optical.shape[1]}x{optical.shape[0]}; set an image size to "
        "resize both")
  return {"sar": np.repeat(sar, in_channels, axis=-1), "optical": optical}
