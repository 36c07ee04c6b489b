"""Batch translation of SAR images (files, folders, globs) into optical PNGs of the input's size."""

import glob
import pathlib
from collections.abc import Iterator, Sequence

import numpy as np
from absl import logging
from PIL import Image

from sar2optical.data.images import load_image
from sar2optical.errors import DataError, Sar2OpticalError
from sar2optical.inference import TrainedGenerator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def find_inputs(spec: str) -> list[tuple[pathlib.Path, pathlib.Path]]:
  """(input file, output path relative to the output folder) for a file, a folder (recursive) or a glob."""
  path = pathlib.Path(spec).expanduser()
  if path.is_file():
    return [(path, pathlib.Path(path.name))]
  if path.is_dir():
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    base = path
  elif glob.has_magic(spec):
    files = sorted(pathlib.Path(p) for p in glob.glob(str(path), recursive=True) if pathlib.Path(p).is_file())
    base = pathlib.Path(*path.parts[:next(i for i, part in enumerate(path.parts) if glob.has_magic(part))])
  else:
    raise DataError(f"--input: {spec} is not a file, a folder or a glob that matches anything")
  if not files:
    raise DataError(f"--input: no images ({', '.join(IMAGE_SUFFIXES)}) in {spec}")
  return [(f, f.relative_to(base)) for f in files]


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
  for start in range(0, len(items), size):
    yield items[start:start + size]


def translate_files(generator: TrainedGenerator, inputs: Sequence[tuple[pathlib.Path, pathlib.Path]],
                    output_dir: pathlib.Path, *, batch_size: int = 8, overwrite: bool = False) -> dict[str, int]:
  """Writes one PNG per input (same height and width); returns counts translated/skipped/failed.

  Each image is resized to the model's input size, translated in eval mode, and the output resized
  back (bilinear). A file that cannot be read is reported by path; the others go on.
  """
  counts = {"translated": 0, "skipped": 0, "failed": 0}
  todo = []
  for source, relative in inputs:
    target = (output_dir / relative).with_suffix(".png")
    if target.exists() and not overwrite:
      logging.info("Skipping %s: %s exists (use --overwrite)", source, target)
      counts["skipped"] += 1
    else:
      todo.append((source, target))
  size = generator.image_size
  for batch in _batches(todo, batch_size):
    loaded, shapes = [], []
    for source, target in batch:
      try:
        original = load_image(source, "L", None)
      except Sar2OpticalError as error:
        logging.error("Failed: %s", error)
        counts["failed"] += 1
        continue
      shapes.append((source, target, original.shape[:2]))
      loaded.append(load_image(source, "L", size))
    if not loaded:
      continue
    sar = np.stack(loaded)
    if generator.in_channels == 3:
      sar = np.repeat(sar, 3, axis=-1)
    padded = np.concatenate([sar, np.repeat(sar[-1:], batch_size - len(sar), axis=0)])  # one compiled shape
    optical = generator.pixels.to_uint8(generator(padded))[:len(sar)]
    for (source, target, (height, width)), image in zip(shapes, optical):
      result = Image.fromarray(image)
      if (height, width) != (size, size):
        result = result.resize((width, height), Image.BILINEAR)
      target.parent.mkdir(parents=True, exist_ok=True)
      result.save(target)
      counts["translated"] += 1
  return counts
