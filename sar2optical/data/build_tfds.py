r"""Builds the `sen1_2` TFDS dataset (ArrayRecord) from a data root in any layout, without TensorFlow.

  python -m sar2optical.commands.build_tfds --manual_dir=/data/v_2 [--data_dir=~/tensorflow_datasets] \
      [--config=pixels|png] [--split_file=split.json] [--seed=0] [--scene_pattern=REGEX] [--seasons=spring,...]

Without --split_file the splits are a seeded split by scene (as `sar2optical-split
--kind=scene` makes). Train on it with --config.data.source=tfds (and --config.data.tfds_data_dir,
--config.data.tfds_config when not the defaults).
"""

import pathlib
import runpy

import tensorflow_datasets as tfds

from sar2optical.core.errors import DataError
from sar2optical.data import sen1_2


def build(manual_dir: str, *, data_dir: str = "", config: str = "pixels", split_file: str = "",
          seed: int = 0, scene_pattern: str = "", seasons: tuple[str, ...] = (),
          examples_per_shard: int = sen1_2.EXAMPLES_PER_SHARD) -> sen1_2.Sen12:
  """Builds (or finds already built) sen1_2/`config` from `manual_dir` into `data_dir`.

  A build interrupted and started again keeps the shards it finished (see `sen1_2.Sen12._generate_splits`).
  """
  manual = pathlib.Path(manual_dir).expanduser()
  if not manual.is_dir():
    raise DataError(f"--manual_dir: {manual} is not a directory")
  builder = sen1_2.Sen12(config=config, data_dir=data_dir or None, split_file=split_file or None,
                         split_seed=seed, scene_pattern=scene_pattern, seasons=seasons,
                         examples_per_shard=examples_per_shard, file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return builder


if __name__ == "__main__":  # the command lives in sar2optical.commands.build_tfds
  runpy.run_module("sar2optical.commands.build_tfds", run_name="__main__", alter_sys=True)
