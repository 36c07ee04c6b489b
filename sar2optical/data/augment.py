"""Fits a decoded SAR/optical pair to the model's size, with optional training augmentation.

A pair is fitted by resizing it to the model's size (`config.data.fit=resize`, the original's: a
pixel side/image_size times coarser than the stored one) or by a random window of the model's size
at the stored resolution (`crop`: the stored pixel). The pix2pix paper's jitter resizes 256² images
to 286² and crops a random 256² window, then mirrors left-right at random; other sizes scale alike
(286/256 of the image size under resize, of the pair's own side under crop). Vertical flips and 90°
rotations are valid for nadir imagery too and can be added. Every random choice is made once per
pair and applied to both images, so they stay co-registered.
"""

import dataclasses
from collections.abc import Callable

import cv2
import ml_collections
import numpy as np

from sar2optical.core.errors import DataError
from sar2optical.data.images import resize

PAPER_LOAD_SIZE = 286
PAPER_CROP_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """How training pairs are fitted to image_size and which random transforms they get (all off: resize only).

  Attributes:
    jitter: resize to `jitter_size` of image_size (with `crop`: of the pair's side) and crop a random
      image_size window.
    hflip: mirror left-right with probability 1/2.
    vflip: mirror top-bottom with probability 1/2.
    rot90: rotate by a random multiple of 90°.
    crop: a random image_size window of the pair at its stored resolution instead of the pair resized.
  """
  jitter: bool = False
  hflip: bool = False
  vflip: bool = False
  rot90: bool = False
  crop: bool = False

  @classmethod
  def from_config(cls, data: ml_collections.ConfigDict) -> "Augmentation":
    """From `config.data`: fit ("resize" | "crop"), augment ("none" | "paper"), vflip, rot90."""
    paper = data.augment == "paper"
    return cls(jitter=paper, hflip=paper, vflip=data.vflip, rot90=data.rot90, crop=data.fit == "crop")


def jitter_size(image_size: int) -> int:
  """The size the paper's jitter resizes to before cropping: 286 for 256, scaled alike."""
  return round(image_size * PAPER_LOAD_SIZE / PAPER_CROP_SIZE)


def jitter_resize(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 (H, W, C) to (size, size, C) with OpenCV: bicubic up (as the pix2pix code), area down."""
  if image.shape[:2] == (size, size):
    return image
  interpolation = cv2.INTER_CUBIC if size >= max(image.shape[:2]) else cv2.INTER_AREA
  return cv2.resize(image, (size, size), interpolation=interpolation).reshape(size, size, image.shape[-1])


def fit_pair(pair: dict[str, np.ndarray], image_size: int, augmentation: Augmentation,
             rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Returns {"sar", "optical"} at image_size², with the same random transforms on both images.

  Without jitter or crop, images of another size are resized as `images.load_image` does (Pillow's
  bilinear), so training and evaluation see the same pixels. With crop, DataError naming
  config.data.fit for a pair smaller than image_size. The result may be the input itself, or a view of it.
  """
  if augmentation.jitter or augmentation.crop:
    side = next(iter(pair.values())).shape[0]
    size = side if not augmentation.jitter else jitter_size(side if augmentation.crop else image_size)
    if size < image_size:
      raise DataError(f"config.data.fit=crop: a training pair is {side}x{side}, smaller than config.image_size="
                      f"{image_size}: set config.data.fit=resize or a smaller config.image_size")
    top, left = rng.integers(0, size - image_size + 1, size=2)
    window = (slice(top, top + image_size), slice(left, left + image_size))
    images = {name: jitter_resize(image, size)[window] for name, image in pair.items()}
  else:
    images = {name: resize(image, image_size) for name, image in pair.items()}
  if augmentation.hflip and rng.random() < 0.5:
    images = {name: _cv2_apply(cv2.flip, image, 1) for name, image in images.items()}
  if augmentation.vflip and rng.random() < 0.5:
    images = {name: _cv2_apply(cv2.flip, image, 0) for name, image in images.items()}
  if augmentation.rot90:
    turns = int(rng.integers(4))
    if turns:
      images = {name: _cv2_apply(cv2.rotate, image, _COUNTERCLOCKWISE[turns]) for name, image in images.items()}
  return images


# np.rot90's k → cv2.rotate's code.
_COUNTERCLOCKWISE = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def _cv2_apply(operation: Callable[[np.ndarray, int], np.ndarray], image: np.ndarray, code: int) -> np.ndarray:
  """An OpenCV flip or rotation of square (S, S, C) `image`.

  It is a contiguous copy, which batches far faster than numpy's reversed views.
  """
  return operation(image, code).reshape(image.shape)
