"""Training logs: TensorBoard event files (tensorboardX, no TensorFlow), JSON lines and PNG grids."""

import io
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tensorboardX import SummaryWriter

from sar2optical.core import storage

GRID_TITLES = ("SAR", "generated", "target")
#: Tiles smaller than this are enlarged (each pixel repeated) so that a person sees them.
GRID_MIN_TILE = 128
_TITLE_HEIGHT = 22


def pair_grid(rows: Iterable[Sequence[np.ndarray]], labels: Sequence[str] = (),
              titles: Sequence[str] = GRID_TITLES) -> np.ndarray:
  """uint8 RGB: the images of each row side by side (SAR | generated | target) under a band of column `titles`,
  the row's label (its class or scene, from `labels`) written on its first image. Tiles under GRID_MIN_TILE
  pixels are enlarged by a whole factor, each pixel repeated; 1-channel images become grey RGB."""
  def rgb(image: np.ndarray) -> np.ndarray:
    image = np.repeat(image[..., :1], 3, axis=-1) if image.shape[-1] != 3 else np.asarray(image)
    factor = -(-GRID_MIN_TILE // image.shape[0])
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image

  tiles = [[rgb(image) for image in row] for row in rows]
  body = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
  canvas = Image.new("RGB", (body.shape[1], body.shape[0] + _TITLE_HEIGHT), "white")
  canvas.paste(Image.fromarray(body), (0, _TITLE_HEIGHT))
  draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=14)
  x = 0
  for title, tile in zip(titles, tiles[0] if tiles else [], strict=False):
    draw.text((x + tile.shape[1] // 2, _TITLE_HEIGHT // 2), title, fill="black", font=font, anchor="mm")
    x += tile.shape[1]
  y = _TITLE_HEIGHT
  for label, row in zip(labels, tiles, strict=False):  # labels of the first rows, or none
    if label:
      draw.text((4, y + 4), label, fill="white", font=font, stroke_width=2, stroke_fill="black")
    y += row[0].shape[0]
  return np.asarray(canvas)


class MetricWriter:
  """Writes scalars to `WORKDIR/metrics.jsonl` and TensorBoard, images to `WORKDIR/samples/`.

  Only process 0 writes; the others get a writer that does nothing. In a bucket, where an object cannot
  be appended to, metrics.jsonl is rewritten whole (`_JsonLines`).
  """

  def __init__(self, workdir: str | storage.Path):
    self.workdir = storage.as_path(workdir, "the workdir")
    self.enabled = jax.process_index() == 0
    if self.enabled:
      self._tensorboard = SummaryWriter(os.fspath(self.workdir / "tensorboard"))
      self._jsonl = _JsonLines(self.workdir / "metrics.jsonl")

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, step)
    self._jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")

  def write_image(self, step: int, name: str, image: np.ndarray) -> storage.Path | None:
    """Saves a uint8 HxWx3 image as `samples/<name>_<step>.png` and to TensorBoard."""
    if not self.enabled:
      return None
    path = self.workdir / "samples" / f"{name}_{step:08d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="PNG")
    storage.write_whole(path, encoded.getvalue())
    self._tensorboard.add_image(name, image, step, dataformats="HWC")
    return path

  def close(self) -> None:
    if self.enabled:
      self._tensorboard.close()
      self._jsonl.close()


class _JsonLines:
  """A JSON-lines file appended to line by line: flushed after each line locally. In a bucket, where an object is
  written whole, it is rewritten at most every UPLOAD_SECONDS and at `close` (a stop by a signal too), so that
  an upload per logged step stays off the training loop's path; a run killed without a signal loses at most
  its last UPLOAD_SECONDS of lines."""

  UPLOAD_SECONDS = 30.0

  def __init__(self, path: storage.Path):
    self.path = path
    if storage.is_remote(path):
      self._lines = [path.read_text()] if path.exists() else []
      self._uploaded = time.monotonic()
    else:
      self._file = open(path, "a", encoding="utf-8")

  def write(self, line: str) -> None:
    if storage.is_remote(self.path):
      self._lines.append(line)
      if time.monotonic() - self._uploaded >= self.UPLOAD_SECONDS:
        self._upload()
    else:
      self._file.write(line)
      self._file.flush()

  def _upload(self) -> None:
    storage.write_whole(self.path, "".join(self._lines))
    self._uploaded = time.monotonic()

  def close(self) -> None:
    if storage.is_remote(self.path):
      self._upload()
    else:
      self._file.close()
