"""Training logs: TensorBoard event files (tensorboardX, no TensorFlow), JSON lines and PNG grids."""

import json
import pathlib
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from PIL import Image
from tensorboardX import SummaryWriter


def pair_grid(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
  """uint8 images laid out in rows (e.g. SAR | generated | target); 1-channel images become grey RGB."""
  def rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., :1], 3, axis=-1) if image.shape[-1] != 3 else image
  return np.concatenate([np.concatenate([rgb(im) for im in row], axis=1) for row in rows], axis=0)


class MetricWriter:
  """Writes scalars to `WORKDIR/metrics.jsonl` and TensorBoard, images to `WORKDIR/samples/`.

  Only process 0 writes; the others get a writer that does nothing.
  """

  def __init__(self, workdir: str | pathlib.Path):
    self.workdir = pathlib.Path(workdir)
    self.enabled = jax.process_index() == 0
    if self.enabled:
      self._tensorboard = SummaryWriter(str(self.workdir / "tensorboard"))
      self._jsonl = open(self.workdir / "metrics.jsonl", "a", encoding="utf-8")

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, step)
    self._jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")
    self._jsonl.flush()

  def write_image(self, step: int, name: str, image: np.ndarray) -> pathlib.Path | None:
    """Saves a uint8 HxWx3 image as `samples/<name>_<step>.png` and to TensorBoard."""
    if not self.enabled:
      return None
    path = self.workdir / "samples" / f"{name}_{step:08d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    self._tensorboard.add_image(name, image, step, dataformats="HWC")
    return path

  def close(self) -> None:
    if self.enabled:
      self._tensorboard.close()
      self._jsonl.close()
