"""The Python API: a trained model, loaded from any path it is handed on as, translating arrays and files.

  import sar2optical
  translator = sar2optical.load("runs/pix2pix")      # a workdir, a step directory or an exported artifact
  rgb = translator.translate(sar)                    # numpy (H, W) or (H, W, C) → uint8 (H, W, 3)
  translator.translate_file("scene_VV.tif", "out/scene.tif", sar_units="linear")
  sar2optical.load("runs/pix2pix", tta=True, samples=4)   # each tile the mean of 8 × 4 generator outputs

Every method runs predict.py's code path (`tile_engine`): the same tiles, blending and masking, so an
array gives the bytes predict.py writes for a file of it. predict.py itself is built on `Translator`.
"""

import dataclasses
import pathlib

import numpy as np

from sar2optical.checkpoints import manager
from sar2optical.core import storage
from sar2optical.core.errors import CheckpointError, ConfigError, DataError
from sar2optical.inference import artifact, raster, tile_engine
from sar2optical.inference.restore import Mode, TrainedGenerator, load_generator
from sar2optical.model import generator as generator_lib
from sar2optical.model.pixels import SarScaling

_TARGET_FORMATS = {suffix: name for name, suffix in raster.OUTPUT_FORMATS.items()}


@dataclasses.dataclass(frozen=True)
class SarOptions:
  """What the SAR values are, as predict.py's flags say: uint8 (SEN1-2 style), linear or dB backscatter
  with its dB range, and the band of a TIFF or (H, W, C) array."""
  sar_units: str = "uint8"
  db_min: float = -25.0
  db_max: float = 0.0
  band: str = "1"


class Translator:
  """A generator with predict.py's tiling: SAR of any size in, uint8 RGB of the same height and width out.

  Attributes:
    generator: what translates the tiles (a checkpoint's generator or an exported artifact).
    overlap: fraction of a tile's side that neighbouring tiles share.
    batch_size: tiles per generator call.
  """

  def __init__(self, generator: tile_engine.TileGenerator, *, overlap: float = 0.25, batch_size: int = 8):
    if not 0.0 <= overlap <= 0.75:
      raise ConfigError(f"overlap must be in [0, 0.75], got {overlap}")
    if batch_size < 1:
      raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    self.generator, self.overlap, self.batch_size = generator, overlap, batch_size

  @property
  def step(self) -> int:
    """The training step of the weights."""
    return self.generator.step

  @property
  def image_size(self) -> int:
    """The side of the tiles the generator translates."""
    return self.generator.image_size

  @property
  def averaging(self) -> generator_lib.Averaging:
    """What each tile's output is the mean of (`load`'s tta and samples); an exported artifact's: off."""
    return self.generator.averaging if isinstance(self.generator, TrainedGenerator) else generator_lib.NO_AVERAGING

  def __repr__(self) -> str:
    source = "an exported artifact" if isinstance(self.generator, artifact.ExportedGenerator) else "a checkpoint"
    side = tile_engine.tile_side(self.generator)
    tiles = f"{self.image_size}² tiles" + (f" (each {side}² input pixels resampled)" if side != self.image_size else "")
    averaging = f"; averaging: {self.averaging.describe()}" if self.averaging.on else ""
    return (f"<Translator: step {self.step}, {tiles} ({source}); SAR in sar_units uint8 (default), "
            f"linear or db, uint8 RGB out; overlap {self.overlap}, batch_size {self.batch_size}{averaging}>")

  def options(self, sar: SarOptions, output_format: str = "auto", overwrite: bool = False) -> tile_engine.Options:
    """predict.py's options for this translator."""
    return tile_engine.Options(SarScaling(sar.sar_units, sar.db_min, sar.db_max), sar.band, self.overlap,
                               self.batch_size, output_format, overwrite)

  def translate(self, sar: np.ndarray, *, progress: bool = False, **sar_options) -> np.ndarray:
    """uint8 RGB (H, W, 3) for SAR (H, W) or (H, W, C); `sar_options` are `SarOptions` fields.

    (H, W, 3) uint8 is made grey as a PNG is; other (H, W, C) arrays give band `band` (1-based).
    `progress`: a progress bar (tiles, ETA) on stderr, for a large scene.
    """
    return tile_engine.translate_array(self.generator, sar, self.options(SarOptions(**sar_options)),
                                       progress=progress)

  def translate_file(self, source: str | pathlib.Path, target: str | pathlib.Path, **sar_options) -> pathlib.Path:
    """Translates one image file into `target` (.png, .jpg or .tif, replaced if it exists); returns its path.

    A GeoTIFF target keeps the source's georeferencing and masks its nodata. Raises DataError naming
    the file that could not be read or written; nothing is left half-written.
    """
    source, target = pathlib.Path(source), pathlib.Path(target)
    output_format = _TARGET_FORMATS.get(target.suffix.lower())
    if output_format is None:
      raise ConfigError(f"{target}: the output must end in {', '.join(_TARGET_FORMATS)}")
    options = self.options(SarOptions(**sar_options), output_format, overwrite=True)
    output_dir = storage.writable_directory(target.parent, "output:")
    summary = tile_engine.translate_files(self.generator, [(source, pathlib.Path(target.name))], output_dir,
                                          options)
    if summary.failed:
      raise DataError(summary.errors[0])
    return output_dir / target.name

  def translate_files(self, inputs: str, output: str | pathlib.Path, *, output_format: str = "auto",
                      overwrite: bool = False, **sar_options) -> tile_engine.Summary:
    """predict.py: a file, folder (recursive) or glob translated into the folder `output`, mirrored.

    Inputs that fail are counted and named in the summary while the others go on; existing outputs
    are skipped unless `overwrite`.
    """
    found = tile_engine.find_inputs(inputs)
    output_dir = storage.writable_directory(output, "--output:")
    return tile_engine.translate_files(self.generator, found, output_dir,
                                       self.options(SarOptions(**sar_options), output_format, overwrite))


def load(path: str | pathlib.Path, step: str | int = "latest", *, mode: Mode = "eval", overlap: float = 0.25,
         batch_size: int = 8, tta: bool = False, samples: int = 1) -> Translator:
  """A `Translator` for a workdir (at `step`), a step directory WORKDIR/checkpoints/<step>, or an exported
  StableHLO artifact (F with F.json beside it; eval mode only, without averaging).

  `tta`: each tile the mean of the generator's outputs over its 8 flips and rotations (8 times the generator
  calls); `samples` K > 1: the mean of K dropout samples (K times the calls; Monte Carlo dropout in eval mode).
  Raises CheckpointError naming the path when it is none of these or cannot be restored.
  """
  path = storage.as_path(path, "the model")
  generator_lib.check_batch(batch_size, mode, "batch_size")
  averaging = generator_lib.Averaging(tta, samples)
  if path.is_file():
    if mode != "eval" or step != "latest" or averaging.on:
      raise ConfigError(f"{path}: an exported artifact has one step and runs in eval mode only, without averaging "
                        "(tta, samples)")
    generator = artifact.ExportedGenerator(path)
  elif manager.is_step_dir(path):
    if step != "latest":
      raise ConfigError(f"{path} is the step directory of step {path.name}: do not pass step={step!r} as well")
    generator = load_generator(storage.resolved(path).parent.parent, int(path.name), mode, averaging)
  elif path.is_dir():
    generator = load_generator(path, step, mode, averaging)
  else:
    raise CheckpointError(f"{path} is not a workdir, a step directory WORKDIR/checkpoints/<step> or an exported "
                          "artifact")
  return Translator(generator, overlap=overlap, batch_size=batch_size)
