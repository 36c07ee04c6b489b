r"""Translates SAR images into optical PNGs with a trained generator.

  python predict.py --workdir=runs/pix2pix --input=path/to/s1_folder_or_file_or_glob --output=out/

Folders are read recursively and mirrored under --output; each output has the input's height and
width. Existing outputs are skipped unless --overwrite. Exits non-zero if any input failed.
"""

import pathlib
import sys

from absl import flags, logging

from sar2optical import cli, prediction
from sar2optical.inference import load_generator

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
_STEP = flags.DEFINE_string("step", "latest", "Checkpoint step to use, or latest.")
_INPUT = flags.DEFINE_string("input", None, "An image, a folder (recursive) or a quoted glob.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per batch.", lower_bound=1)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing outputs instead of skipping them.")
flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv: list[str]) -> None:
  del argv
  generator = load_generator(_WORKDIR.value, _STEP.value)
  inputs = prediction.find_inputs(_INPUT.value)
  logging.info("Translating %d images with step %d of %s", len(inputs), generator.step, _WORKDIR.value)
  counts = prediction.translate_files(generator, inputs, pathlib.Path(_OUTPUT.value), batch_size=_BATCH_SIZE.value,
                                      overwrite=_OVERWRITE.value)
  print(f"translated {counts['translated']}, skipped {counts['skipped']}, failed {counts['failed']} "
        f"-> {_OUTPUT.value}")
  if counts["failed"]:
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main)
