r"""Writes a train/val/test split file (the original's split.json format) and prints its counts.

  python -m sar2optical.data.split --root=/data/v_2 --kind=scene --output=split.json [--seed=0]
  python -m sar2optical.data.split --root=/data/v_2 --split_file=data/split.json   # counts only

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

from collections.abc import Iterable, Sequence

from absl import flags

from sar2optical import cli
from sar2optical.data import pairs as pairs_lib
from sar2optical.errors import ConfigError

FLAGS = flags.FLAGS


def make(kind: str, pairs: Sequence[pairs_lib.Pair], seed: int, fractions: tuple[float, float, float],
         per_class: int) -> dict:
  """The split of `kind` (scene, original or balanced) of `pairs`."""
  if kind == "scene":
    return pairs_lib.make_split(pairs, seed, fractions)
  if kind == "original":
    return pairs_lib.make_patch_split(pairs, seed, fractions=fractions)
  return pairs_lib.make_patch_split(pairs, seed, per_class=per_class)


def describe(split: dict, pairs: Sequence[pairs_lib.Pair]) -> Iterable[str]:
  """Lines with the pairs per class and split, the scenes per split and what leaks or is missing."""
  names = pairs_lib.SPLIT_NAMES
  counts = pairs_lib.split_counts(split, pairs)
  per_label = {label: sum(counts[name][label] for name in names) for label in counts["train"]}
  totals = {name: sum(counts[name].values()) for name in names}

  def row(title: str, values: dict[str, int], total: int) -> str:
    cells = "".join(f"{values[name]:>8} ({values[name] / max(total, 1):4.0%})" for name in names)
    return f"{title:<16}{cells}{total:>10}"

  yield f"{'class':<16}" + "".join(f"{name:>15}" for name in names) + f"{'total':>10}"
  for label, total in per_label.items():
    yield row(label or "(no class)", {name: counts[name][label] for name in names}, total)
  yield row("all", totals, sum(totals.values()))
  scenes = {name: {pair.scene for pair in pairs_lib.select(pairs, split, name) if pair.scene} for name in names}
  all_scenes = set().union(*scenes.values())
  yield f"{'scenes':<16}" + "".join(f"{len(scenes[name]):>15}" for name in names) + f"{len(all_scenes):>10}"
  shared = pairs_lib.shared_scenes(split, pairs)
  yield (f"scenes in more than one split: {len(shared)} (their overlapping patches leak into evaluation)"
         if shared else "scenes in more than one split: none")
  whole = {label: next(name for name in names if counts[name][label] == total)
           for label, total in per_label.items() if total and max(counts[name][label] for name in names) == total}
  if whole:
    listed = ", ".join(f"{label} ({name})" for label, name in whole.items())
    yield (f"classes wholly in one split: {listed}; val/test scores per class cover only the classes "
           "there, so report per class with eval.py --split=all on this data")


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("root", None, "The SEN1-2 folder (Kaggle layout <class>/s1, <class>/s2).")
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
  pairs = pairs_lib.find_pairs(FLAGS.root)
  if FLAGS.split_file:
    split = pairs_lib.read_split(FLAGS.split_file)
    print(f"{FLAGS.split_file} over {len(pairs)} pairs in {FLAGS.root}:")
  else:
    if not FLAGS.output:
      raise ConfigError("--output: required to write a split (or give --split_file to count one)")
    try:
      fractions = tuple(float(value) for value in FLAGS.fractions)
    except ValueError:
      raise ConfigError(f"--fractions: expected three numbers, got {','.join(FLAGS.fractions)}") from None
    split = make(FLAGS.kind, pairs, FLAGS.seed, fractions, FLAGS.per_class)
    pairs_lib.write_split(FLAGS.output, split)
    print(f"{FLAGS.kind} split (seed {FLAGS.seed}) of {len(pairs)} pairs in {FLAGS.root}, written to "
          f"{FLAGS.output}:")
  print("\n".join(describe(split, pairs)))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
