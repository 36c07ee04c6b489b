"""Runs a generator exported by `sar2optical-export`, with jax and numpy only.

  python load_exported.py generator.jax input.png output.png     # needs Pillow too

  from load_exported import load
  generator = load("generator.jax")     # reads generator.jax and generator.jax.json
  rgb = generator(sar)                  # uint8 (B, S, S, C) -> uint8 (B, S, S, 3), any B
"""

import json
import pathlib
import sys

import jax
import numpy as np


class ExportedGenerator:
  """The deserialized generator and its sidecar: `image_size`, `in_channels`, `step`, `spec`."""

  def __init__(self, path):
    path = pathlib.Path(path)
    self.spec = json.loads(pathlib.Path(f"{path}.json").read_text())
    self.image_size = self.spec["image_size"]
    self.in_channels = self.spec["in_channels"]
    self.step = self.spec["step"]
    self.exported = jax.export.deserialize(bytearray(path.read_bytes()))

  def __call__(self, sar):
    sar = np.asarray(sar)
    expected = (self.image_size, self.image_size, self.in_channels)
    if sar.dtype != np.uint8 or sar.ndim != 4 or sar.shape[1:] != expected:
      raise ValueError(f"expected uint8 SAR of shape (batch, {', '.join(map(str, expected))}), "
                       f"got {sar.dtype} {sar.shape}")
    return np.asarray(self.exported.call(sar))


def load(path):
  return ExportedGenerator(path)


def translate_png(generator, source, target):
  """One SAR image file -> an RGB PNG of its size (bilinear resizing to and from the model's size).

  One tile: right for an image of the ground one tile of the model covers, image_size * pixel_scale pixels
  on a side (the sidecar's pixel_scale; 1 when absent); larger scenes go through predict.py's tiles.
  """
  from PIL import Image
  with Image.open(source) as image:
    grey = image.convert("L")
  side = round(generator.image_size * generator.spec.get("pixel_scale", 1.0))
  if grey.size != (side, side):
    print(f"warning: {source} is {grey.size[0]}x{grey.size[1]} pixels; the model learned tiles of {side}x{side}: "
          "its ground resolution differs from the training pairs' (sar2optical's predict.py tiles it)",
          file=sys.stderr)
  size = (generator.image_size, generator.image_size)
  sar = np.asarray(grey.resize(size, Image.BILINEAR) if grey.size != size else grey, np.uint8)
  sar = np.repeat(sar[None, :, :, None], generator.in_channels, axis=-1)
  rgb = Image.fromarray(generator(sar)[0])
  (rgb.resize(grey.size, Image.BILINEAR) if rgb.size != grey.size else rgb).save(target)


if __name__ == "__main__":
  if len(sys.argv) != 4:
    sys.exit(f"usage: python {sys.argv[0]} ARTIFACT INPUT_IMAGE OUTPUT_PNG")
  translate_png(load(sys.argv[1]), sys.argv[2], sys.argv[3])
