"""The `python -m sar2optical.commands.build_tfds` command (console script `sar2optical-build-tfds`)."""

from absl import flags

from sar2optical.commands import cli
from sar2optical.data import build_tfds as build_tfds_lib
from sar2optical.data.build_tfds import build
from sar2optical.data.pairs import parse_seasons
from sar2optical.data.sources import TFDS_CONFIGS

__doc__ = build_tfds_lib.__doc__  # the usage that --help prints: the module's own


FLAGS = flags.FLAGS

def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("manual_dir", None, "The data root: SEN1-2 (Kaggle v_2 or mediaTUM's season folders) or "
                      "same-name folders.")
  flags.DEFINE_string("data_dir", "", "Where TFDS datasets go; empty: the TFDS default "
                      "(~/tensorflow_datasets).")
  flags.DEFINE_enum("config", "pixels", TFDS_CONFIGS, "pixels: decoded uint8 (fastest to read); png: "
                    "PNG bytes (smallest).")
  flags.DEFINE_string("split_file", "", "split.json (the original's format) to split by; empty: a "
                      "seeded split by scene.")
  flags.DEFINE_integer("seed", 0, "Seed of the split by scene (without --split_file).")
  flags.DEFINE_string("scene_pattern", "", "Regex with a `scene` group, searched in SAR file names; empty: SEN1-2 "
                      "names.")
  flags.DEFINE_string("seasons", "", "Only pairs of these seasons, e.g. spring,summer (SEN1-2 names); empty: all.")
  flags.mark_flag_as_required("manual_dir")


def main(argv: list[str]) -> None:
  del argv
  builder = build(FLAGS.manual_dir, data_dir=FLAGS.data_dir, config=FLAGS.config,
                  split_file=FLAGS.split_file, seed=FLAGS.seed, scene_pattern=FLAGS.scene_pattern,
                  seasons=parse_seasons(FLAGS.seasons, "--seasons"))
  counts = ", ".join(f"{name} {split.num_examples}" for name, split in builder.info.splits.items())
  print(f"sen1_2/{FLAGS.config} in {builder.data_dir}: {counts} pairs (an existing build is reused: "
        "remove its folder to rebuild)")


def run() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
