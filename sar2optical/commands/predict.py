r"""Translates SAR images or whole scenes of any size into optical RGB with a trained generator.

  python predict.py --workdir=runs/pix2pix --input=FILE|FOLDER|'GLOB' --output=out/
  python predict.py --checkpoint=runs/pix2pix/checkpoints/87500 --input=S1_sigma0_VV.tif \
      --sar_units=linear --output=out/

Inputs are PNG, JPEG, TIFF or GeoTIFF, translated in overlapping tiles of the model's size and
blended, so each output has its input's height and width. GeoTIFF inputs give GeoTIFFs with the
same georeferencing, other inputs PNGs (--output_format). Folders are read recursively and
mirrored under --output. Existing outputs are skipped unless --overwrite. Exits 1 if any input
failed; when the output disk fills up, no further input starts and it exits 2 with one line saying
how much space the rest needs. --tta and --samples average each tile's output over flips and rotations
and over dropout samples, at 8 and K times the generator calls.
"""

import sys

from absl import flags

import sar2optical
from sar2optical.checkpoints import manager
from sar2optical.commands import cli
from sar2optical.core import storage
from sar2optical.core.errors import CheckpointError, ConfigError, DiskFull
from sar2optical.inference import tile_engine
from sar2optical.model import generator as generator_lib
from sar2optical.model.pixels import SAR_UNITS

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
_STEP = flags.DEFINE_string("step", "latest", "With --workdir: the checkpoint step to use, or latest.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A step directory WORKDIR/checkpoints/<step>, or an "
                                  "artifact of sar2optical-export (instead of --workdir and --step).")
_MODE = flags.DEFINE_enum("mode", "eval", ["eval", "train"], "eval: running BatchNorm statistics, no dropout "
                          "(default); train: batch statistics and dropout, as the pix2pix authors test.")
_INPUT = flags.DEFINE_string("input", None, "An image, a folder (recursive), a quoted glob, or the https://, gs:// "
                             "or s3:// URL of one raster.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder.")
_OUTPUT_FORMAT = flags.DEFINE_enum("output_format", "auto", tile_engine.OUTPUT_FORMAT_CHOICES,
                                   "auto: GeoTIFF for georeferenced inputs, PNG otherwise.")
_SAR_UNITS = flags.DEFINE_enum("sar_units", "uint8", SAR_UNITS, "uint8: 8-bit SEN1-2 SAR as in training; "
                               "linear or db: calibrated backscatter (sigma0 or gamma0), scaled as SEN1-2.")
_DB_MIN = flags.DEFINE_float("db_min", -25.0, "With linear or db units: dB mapped to 0.")
_DB_MAX = flags.DEFINE_float("db_max", 0.0, "With linear or db units: dB mapped to 255.")
_BAND = flags.DEFINE_string("band", "1", "TIFF band to translate: a 1-based index or a band description "
                            "such as VV (PNG/JPEG are converted to grey, as in training).")
_OVERLAP = flags.DEFINE_float("overlap", 0.25, "Fraction of a tile's side shared with its neighbours.",
                              lower_bound=0.0, upper_bound=0.75)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Tiles per batch.", lower_bound=1)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing outputs instead of skipping them.")
_TTA = flags.DEFINE_bool("tta", False, "Test-time augmentation: each tile's output is the mean over its 8 flips and "
                         "rotations (8 times the generator calls).")
_SAMPLES = flags.DEFINE_integer("samples", 1, "Each tile's output is the mean of this many dropout samples (more "
                                "than 1: dropout on, in eval mode too; that many times the generator calls, 8 times "
                                "more with --tta).")
flags.mark_flags_as_required(["input", "output"])
flags.mark_flags_as_mutual_exclusive(["workdir", "checkpoint"], required=True)


def _model_path() -> str:
  """--workdir, or --checkpoint once it is known to be a step directory or an artifact file."""
  if _WORKDIR.value:
    return _WORKDIR.value
  path = storage.as_path(str(_CHECKPOINT.value), "--checkpoint")
  if _STEP.value != "latest":
    raise ConfigError("--step goes with --workdir; --checkpoint names its step itself")
  if not (path.is_file() or manager.is_step_dir(path)):
    raise CheckpointError(f"--checkpoint: {path} is not a step directory WORKDIR/checkpoints/<step> or an "
                          "exported artifact")
  return _CHECKPOINT.value


def main(argv: list[str]) -> None:
  del argv
  generator_lib.check_samples(_SAMPLES.value, "--samples")
  translator = sar2optical.load(_model_path(), _STEP.value, mode=_MODE.value, overlap=_OVERLAP.value,
                                batch_size=_BATCH_SIZE.value, tta=_TTA.value, samples=_SAMPLES.value)
  summary = translator.translate_files(
      _INPUT.value, _OUTPUT.value, output_format=_OUTPUT_FORMAT.value, overwrite=_OVERWRITE.value,
      sar_units=_SAR_UNITS.value, db_min=_DB_MIN.value, db_max=_DB_MAX.value, band=_BAND.value)
  print(f"{summary} -> {_OUTPUT.value}")
  if summary.disk_full:
    raise DiskFull(summary.disk_full)
  if summary.failed:
    sys.exit(1)


def run() -> None:
  cli.run(main)


if __name__ == "__main__":  # python -m sar2optical.commands.predict
  run()
