r"""Writes a train/val/test split file (the original's split.json format) and prints its counts.

  python -m sar2optical.commands.split --root=/data/v_2 --kind=scene --output=split.json [--seed=0]
  python -m sar2optical.commands.split --root=/data/v_2 --split_file=data/split.json   # counts only

Kinds:
  scene     no scene in two splits (patches of one scene overlap on the ground, so a per-patch
            split leaks near-duplicates into the test set); each class split --fractions
            (0.8/0.1/0.1) as far as whole scenes allow: the counts show how far.
  original  the original repository's later split: --fractions per patch, stratified by class
            (12,800 / 1,600 / 1,600 of the Kaggle set's 16,000). Leaks scenes.
  balanced  the project's seed document: --per_class (250) pairs of every class in val and in
            test, the rest in train (14,000 of 16,000), per patch. Leaks scenes.

Train on it with --config.data.split_file=split.json.
"""

from absl import flags

from sar2optical.commands import cli
from sar2optical.core.errors import ConfigError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import splits

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("root", None, "The data root (SEN1-2 in the Kaggle or original layout, or same-name folders).")
  flags.DEFINE_string("scene_pattern", "", "Regex with a `scene` group, searched in SAR file names; empty: SEN1-2 "
                      "names (ROIs1970_fall_s1_13_p265 → ROIs1970_fall_13).")
  flags.DEFINE_string("seasons", "", "Only pairs of these seasons, e.g. spring,summer (SEN1-2 names); empty: all.")
  flags.DEFINE_enum("kind", "scene", ["scene", "original", "balanced"], "Which split to make.")
  flags.DEFINE_string("output", None, "Where to write the split file (required unless --split_file).")
  flags.DEFINE_string("split_file", None, "Print the counts of this existing split file instead.")
  flags.DEFINE_integer("seed", 0, "Seed of the split.")
  flags.DEFINE_list("fractions", ["0.8", "0.1", "0.1"], "train,val,test shares (scene, original).")
  flags.DEFINE_integer("per_class", 250, "Pairs of each class in val and in test (balanced).",
                       lower_bound=1)
  flags.mark_flag_as_required("root")


def main(argv: list[str]) -> None:
  del argv
  pairs = pairs_lib.find_pairs(FLAGS.root, FLAGS.scene_pattern, pairs_lib.parse_seasons(FLAGS.seasons, "--seasons"))
  if FLAGS.split_file:
    split = splits.read_split(FLAGS.split_file)
    print(f"{FLAGS.split_file} over {len(pairs)} pairs in {FLAGS.root}:")
  else:
    if not FLAGS.output:
      raise ConfigError("--output: required to write a split (or give --split_file to count one)")
    try:
      fractions = tuple(float(value) for value in FLAGS.fractions)
    except ValueError:
      raise ConfigError(f"--fractions: expected three numbers, got {','.join(FLAGS.fractions)}") from None
    split = splits.make_kind(FLAGS.kind, pairs, FLAGS.seed, fractions, FLAGS.per_class)
    splits.write_split(FLAGS.output, split)
    print(f"{FLAGS.kind} split (seed {FLAGS.seed}) of {len(pairs)} pairs in {FLAGS.root}, written to "
          f"{FLAGS.output}:")
  print("\n".join(splits.describe(split, pairs)))


def run() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
