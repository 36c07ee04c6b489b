"""Train/val/test splits of SAR/optical pairs: by scene, per patch, and split files.

Splits use the format of the original SAR2Optical `split.json`:
`{"data": {"train": [...], "val": [...], "test": [...]}}`, listing s1 paths relative to the data root.
Patches of one scene overlap on the ground, so `make_split` keeps every scene in one split;
`make_patch_split` reproduces the per-patch splits of the original and of the seed document.
"""

import collections
import json
import os
import random
from collections.abc import Iterable, Sequence

from absl import logging

from sar2optical.core import storage
from sar2optical.core.errors import DataError
from sar2optical.data.pairs import Pair

SPLIT_NAMES = ("train", "val", "test")


def make_split(
    pairs: Sequence[Pair],
    seed: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict:
  """Splits pairs into train/val/test so that no scene is in two splits, stratified by class.

  Each scene goes whole to one split (a pair whose name carries no scene is its own group, with a
  warning that the split may leak). The scenes are placed so that each class's share of each split
  comes as close to `fractions` as whole scenes allow, and every split gets at least one scene;
  `split_counts` tells how close.

  Args:
    pairs: the pairs to split, e.g. from `find_pairs`.
    seed: seed of the order in which scenes of equal size are placed.
    fractions: target (train, val, test) fractions of each class.

  Returns:
    `{"data": {"train": [...], "val": [...], "test": [...]}}` with sorted s1 paths.
  """
  _check_fractions(fractions)
  groups = scene_groups(pairs)
  without_scene = sum(pair.scene is None for pair in pairs)
  if without_scene:
    logging.warning("%d of %d pairs carry no scene id in their file names: each is a group of its own, so patches "
                    "of one scene may land in two splits and leak into evaluation; set a regex with a `scene` group "
                    "(config.data.scene_pattern, --scene_pattern) that finds the scene in the names", without_scene,
                    len(pairs))
  if len(groups) < len(SPLIT_NAMES):
    raise DataError(
        f"cannot make disjoint train/val/test splits from {len(groups)} scenes: "
        f"need at least 3 so that each split gets one ({sorted(groups)})")
  sizes = collections.Counter(pair.label for pair in pairs)
  targets = {name: {label: fraction * size for label, size in sizes.items()}
             for name, fraction in zip(SPLIT_NAMES, fractions)}
  return _assign_groups(groups, targets, seed)


def scene_groups(pairs: Sequence[Pair]) -> dict[str, list[Pair]]:
  """{scene id: its pairs}, in the order of `pairs`; a pair whose name carries no scene is its own group (its s1 path)."""
  groups = collections.defaultdict(list)
  for pair in pairs:
    groups[pair.scene or pair.s1].append(pair)
  return dict(groups)


def make_patch_split(
    pairs: Sequence[Pair],
    seed: int,
    *,
    fractions: tuple[float, float, float] | None = None,
    per_class: int | None = None,
) -> dict:
  """Splits pairs one by one (scenes may leak across splits), stratified by class.

  Exactly one of `fractions` and `per_class` is given:
    fractions: (train, val, test) shares; val and test get round(share * len(pairs)) pairs,
      apportioned to the classes by their sizes (the original SAR2Optical split: 0.8/0.1/0.1,
      12,800/1,600/1,600 of the Kaggle set's 16,000).
    per_class: val and test each get this many pairs of every class, train the rest
      (250: the 1,000/1,000/14,000 split of the project's seed document).

  Returns:
    `{"data": {"train": [...], "val": [...], "test": [...]}}` with sorted s1 paths.
  """
  if (fractions is None) == (per_class is None):
    raise ValueError("give exactly one of fractions and per_class")
  sizes = collections.Counter(pair.label for pair in pairs)
  if per_class is not None:
    for label, size in sorted(sizes.items()):
      if size <= 2 * per_class:
        raise DataError(
            f"class {label or '(unnamed)'!r} has {size} pairs: too few for {per_class} in val, "
            f"{per_class} in test and some in train; choose a smaller per-class count")
    held_out = {label: per_class for label in sizes}
    targets = {"val": held_out, "test": held_out}
  else:
    _check_fractions(fractions)
    targets = {name: _apportion(round(fraction * len(pairs)), sizes)
               for name, fraction in zip(SPLIT_NAMES[1:], fractions[1:])}
  targets["train"] = {label: size - targets["val"][label] - targets["test"][label]
                      for label, size in sizes.items()}
  return _assign_groups({pair.s1: [pair] for pair in pairs}, targets, seed)


def _check_fractions(fractions: Sequence[float]) -> None:
  if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
    raise DataError(
        f"split fractions must be three positive numbers (train, val, test) summing to 1, "
        f"got {tuple(fractions)}")


def _apportion(total: int, sizes: collections.Counter) -> dict[str, int]:
  """Splits `total` over the labels in proportion to `sizes` (largest remainder)."""
  shares = {label: total * size / sizes.total() for label, size in sizes.items()}
  counts = {label: int(share) for label, share in shares.items()}
  by_remainder = sorted(shares, key=lambda label: (counts[label] - shares[label], label))
  for label in by_remainder[:total - sum(counts.values())]:
    counts[label] += 1
  return counts


def _assign_groups(groups: dict[str, list[Pair]], targets: dict[str, dict[str, float]],
                   seed: int) -> dict:
  """Places whole groups into splits so that per-class counts come close to `targets`.

  The cost is the sum over splits and classes of ((count - target) / class size)^2. Groups are
  placed largest first (equal sizes in a seeded order), each where it adds the least cost, the
  last ones into any split still empty; then single groups move while that lowers the cost
  and leaves no split empty.
  """
  sizes = collections.Counter(pair.label for members in groups.values() for pair in members)
  counts = {name: collections.Counter() for name in SPLIT_NAMES}
  members = {name: [] for name in SPLIT_NAMES}
  group_labels = {key: collections.Counter(pair.label for pair in pairs)
                  for key, pairs in groups.items()}

  def added_cost(name: str, key: str, sign: int) -> float:
    cost = 0.0
    for label, size in group_labels[key].items():
      before = counts[name][label] - targets[name].get(label, 0)
      cost += ((before + sign * size) ** 2 - before ** 2) / sizes[label] ** 2
    return cost

  def place(key: str, name: str, sign: int) -> None:
    counts[name].update({label: sign * size for label, size in group_labels[key].items()})
    if sign > 0:
      members[name].append(key)
    else:
      members[name].remove(key)

  keys = sorted(groups)
  random.Random(seed).shuffle(keys)
  keys.sort(key=lambda key: -len(groups[key]))
  home = {}
  for placed, key in enumerate(keys):
    empty = [name for name in SPLIT_NAMES if not members[name]]
    candidates = empty if len(keys) - placed <= len(empty) else SPLIT_NAMES
    home[key] = min(candidates, key=lambda name: added_cost(name, key, +1))
    place(key, home[key], +1)
  moved = True
  while moved:
    moved = False
    for key in keys:
      if len(members[home[key]]) == 1:
        continue
      leaving = added_cost(home[key], key, -1)
      target = min((name for name in SPLIT_NAMES if name != home[key]),
                   key=lambda name: added_cost(name, key, +1))
      if leaving + added_cost(target, key, +1) < -1e-12:
        place(key, home[key], -1)
        place(key, target, +1)
        home[key], moved = target, True
  return {"data": {name: sorted(pair.s1 for key in members[name] for pair in groups[key])
                   for name in SPLIT_NAMES}}


def write_split(path: str | os.PathLike[str], split: dict) -> None:
  """Writes `split` as JSON, creating parent folders; atomically, so a reader never sees half a file."""
  path = storage.as_path(path, "the split file")
  path.parent.mkdir(parents=True, exist_ok=True)
  storage.write_whole(path, json.dumps(split, indent=2) + "\n")


def read_split(path: str | os.PathLike[str]) -> dict:
  """Reads and checks a split file in the original SAR2Optical format."""
  path = storage.as_path(path, "the split file")
  try:
    split = json.loads(path.read_text())
  except FileNotFoundError:
    raise DataError(f"split file not found: {path}") from None
  except (OSError, UnicodeDecodeError) as error:
    raise DataError(f"cannot read split file {path}: {error}") from None
  except json.JSONDecodeError as error:
    raise DataError(f"split file {path} is not valid JSON: {error}") from None
  if not isinstance(split, dict) or not isinstance(split.get("data"), dict):
    raise DataError(
        f'split file {path} has no "data" object; expected '
        '{"data": {"train": [...], "val": [...], "test": [...]}}')
  for name in SPLIT_NAMES:
    entries = split["data"].get(name)
    if entries is None:
      raise DataError(f'split file {path} has no "data.{name}" list')
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
      raise DataError(f'split file {path}: "data.{name}" must be a list of s1 paths')
  return split


def select(pairs: Sequence[Pair], split: dict, name: str) -> list[Pair]:
  """Returns the pairs of split `name` (train, val, test, or all for every pair)."""
  if name == "all":
    return list(pairs)
  if name not in SPLIT_NAMES:
    raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}, all")
  entries = split["data"].get(name)
  if entries is None:
    raise DataError(f'split has no "data.{name}" list')
  found = {pair.s1 for pair in pairs}
  for index, s1 in enumerate(entries):
    if s1 not in found:
      raise DataError(
          f"split entry data.{name}[{index}] = {s1!r} is not among the pairs found "
          "under the data root")
  wanted = set(entries)
  return [pair for pair in pairs if pair.s1 in wanted]


def split_counts(split: dict, pairs: Sequence[Pair]) -> dict[str, dict[str, int]]:
  """Returns {split name: {label: number of pairs}}, listing every label of `pairs`."""
  labels = sorted({pair.label for pair in pairs})
  counts = {}
  for name in SPLIT_NAMES:
    per_label = collections.Counter(pair.label for pair in select(pairs, split, name))
    counts[name] = {label: per_label[label] for label in labels}
  return counts


def shared_scenes(split: dict, pairs: Sequence[Pair]) -> list[str]:
  """Returns the scenes that have pairs in more than one split, sorted."""
  splits_of_scene = collections.defaultdict(set)
  for name in SPLIT_NAMES:
    for pair in select(pairs, split, name):
      if pair.scene is not None:
        splits_of_scene[pair.scene].add(name)
  return sorted(scene for scene, names in splits_of_scene.items() if len(names) > 1)


def make_kind(kind: str, pairs: Sequence[Pair], seed: int, fractions: tuple[float, float, float],
         per_class: int) -> dict:
  """The split of `kind` (scene, original or balanced) of `pairs`."""
  if kind == "scene":
    return make_split(pairs, seed, fractions)
  if kind == "original":
    return make_patch_split(pairs, seed, fractions=fractions)
  return make_patch_split(pairs, seed, per_class=per_class)


def describe(split: dict, pairs: Sequence[Pair]) -> Iterable[str]:
  """Lines with the pairs per class and split, the scenes per split and what leaks or is missing."""
  names = SPLIT_NAMES
  counts = split_counts(split, pairs)
  per_label = {label: sum(counts[name][label] for name in names) for label in counts["train"]}
  totals = {name: sum(counts[name].values()) for name in names}

  def row(title: str, values: dict[str, int], total: int) -> str:
    cells = "".join(f"{values[name]:>8} ({values[name] / max(total, 1):4.0%})" for name in names)
    return f"{title:<16}{cells}{total:>10}"

  yield f"{'class':<16}" + "".join(f"{name:>15}" for name in names) + f"{'total':>10}"
  for label, total in per_label.items():
    yield row(label or "(no class)", {name: counts[name][label] for name in names}, total)
  yield row("all", totals, sum(totals.values()))
  scenes = {name: {pair.scene for pair in select(pairs, split, name) if pair.scene} for name in names}
  all_scenes = set().union(*scenes.values())
  yield f"{'scenes':<16}" + "".join(f"{len(scenes[name]):>15}" for name in names) + f"{len(all_scenes):>10}"
  shared = shared_scenes(split, pairs)
  yield (f"scenes in more than one split: {len(shared)} (their overlapping patches leak into evaluation)"
         if shared else "scenes in more than one split: none")
  whole = {label: next(name for name in names if counts[name][label] == total)
           for label, total in per_label.items() if total and max(counts[name][label] for name in names) == total}
  if whole:
    listed = ", ".join(f"{label} ({name})" for label, name in whole.items())
    yield (f"classes wholly in one split: {listed}; val/test scores per class cover only the classes "
           "there, so report per class with eval.py --split=all on this data")
