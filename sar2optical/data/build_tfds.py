r"""Builds the `sen1_2` TFDS dataset (ArrayRecord) from a SEN1-2 folder, without TensorFlow.

  python -m sar2optical.data.build_tfds --manual_dir=/data/v_2 [--data_dir=~/tensorflow_datasets] \
      [--config=pixels|png] [--split_file=split.json] [--seed=0]

Without --split_file the splits are a seeded split by scene (as `sar2optical.data.split
--kind=scene` makes). Train on it with --config.data.source=tfds (and --config.data.tfds_data_dir,
--config.data.tfds_config when not the defaults).
"""

import pathlib

from absl import flags
import tensorflow_datasets as tfds

from sar2optical import cli
from sar2optical.data import sen1_2
from sar2optical.data.sources import TFDS_CONFIGS
from sar2optical.errors import DataError

FLAGS = flags.FLAGS


def build(manual_dir: str, *, data_dir: str = "", config: str = "pixels", split_file: str = "",
          seed: int = 0) -> sen1_2.Sen12:
  """Builds (or finds already built) sen1_2/`config` from `manual_dir` into `data_dir`."""
  manual = pathlib.Path(manual_dir).expanduser()
  if not manual.is_dir():
    raise DataError(f"--manual_dir: {manual} is not a directory")
  builder = sen1_2.Sen12(config=config, data_dir=data_dir or None, split_file=split_file or None,
                         split_seed=seed, file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return builder


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("manual_dir", None, "The SEN1-2 folder (Kaggle v_2: <class>/s1, <class>/s2).")
  flags.DEFINE_string("data_dir", "", "Where TFDS datasets go; empty: the TFDS default "
                      "(~/tensorflow_datasets).")
  flags.DEFINE_enum("config", "pixels", TFDS_CONFIGS, "pixels: decoded uint8 (fastest to read); png: "
                    "PNG bytes (smallest).")
  flags.DEFINE_string("split_file", "", "split.json (the original's format) to split by; empty: a "
                      "seeded split by scene.")
  flags.DEFINE_integer("seed", 0, "Seed of the split by scene (without --split_file).")
  flags.mark_flag_as_required("manual_dir")


def main(argv: list[str]) -> None:
  del argv
  builder = build(FLAGS.manual_dir, data_dir=FLAGS.data_dir, config=FLAGS.config,
                  split_file=FLAGS.split_file, seed=FLAGS.seed)
  counts = ", ".join(f"{name} {split.num_examples}" for name, split in builder.info.splits.items())
  print(f"sen1_2/{FLAGS.config} in {builder.data_dir}: {counts} pairs (an existing build is reused: "
        "remove its folder to rebuild)")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
