"""Finds SAR/optical pairs on disk and splits them into train/val/test by scene.

Two layouts are understood, both with the SEN1-2 naming where an s1 file's optical twin
has the same name with `_s1_` replaced by `_s2_`:

  ROOT/<class>/s1/ROIs1970_fall_s1_13_p265.png  ROOT/<class>/s2/ROIs1970_fall_s2_13_p265.png
  ROOT/s1/ROIs1970_fall_s1_13_p265.png          ROOT/s2/ROIs1970_fall_s2_13_p265.png

Splits use the format of the original SAR2Optical `split.json`:
`{"data": {"train": [...], "val": [...], "test": [...]}}`, listing s1 paths relative to ROOT.
"""

import collections
from collections.abc import Sequence
import dataclasses
import json
import os
import pathlib
import random
import re

from sar2optical.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SPLIT_NAMES = ("train", "val", "test")
_SAR_TAG = "_s1_"
_OPTICAL_TAG = "_s2_"
_SCENE_PATTERN = re.compile(
    r"(?P<roi>ROIs\d+)_(?P<season>[A-Za-z]+)_s[12]_(?P<scene>\d+)_p\d+(?:\.\w+)?")


@dataclasses.dataclass(frozen=True)
class Pair:
  """One SAR/optical pair.

  Attributes:
    s1: POSIX path of the SAR image, relative to the data root.
    s2: POSIX path of the optical image, relative to the data root.
    label: class folder name, or "" when the root holds s1/ and s2/ directly.
    scene: scene id such as "ROIs1970_fall_13", or None if the name carries none.
  """
  s1: str
  s2: str
  label: str
  scene: str | None


def scene_of(filename: str) -> str | None:
  """Returns "ROIs1970_fall_13" for "ROIs1970_fall_s1_13_p265.png", else None."""
  match = _SCENE_PATTERN.fullmatch(filename)
  if match is None:
    return None
  return f"{match['roi']}_{match['season']}_{match['scene']}"


@dataclasses.dataclass(frozen=True)
class FolderIndex:
  """What a data root holds: its pairs and the images that lack a twin.

  Attributes:
    pairs: every SAR/optical pair, sorted by s1 path.
    sar_without_optical: (SAR image, the optical twin it lacks) paths.
    optical_without_sar: (optical image, the SAR twin it lacks) paths.
    empty_classes: class folders with an s1/ or s2/ folder but no image in either.
  """
  pairs: list[Pair]
  sar_without_optical: list[tuple[pathlib.Path, pathlib.Path]]
  optical_without_sar: list[tuple[pathlib.Path, pathlib.Path]]
  empty_classes: list[pathlib.Path]


def _images(folder: pathlib.Path, tag: str) -> list[pathlib.Path]:
  """The image files in `folder` whose names carry `tag` (none if it is missing)."""
  if not folder.is_dir():
    return []
  return sorted(path for path in folder.iterdir()
                if path.suffix.lower() in IMAGE_SUFFIXES and tag in path.name)


def index_folder(root: str | os.PathLike[str]) -> FolderIndex:
  """Indexes the pairs under `root` and the images without a twin; raises only for a bad root."""
  root = pathlib.Path(root)
  if not root.exists():
    raise DataError(f"data root not found: {root}")
  if not root.is_dir():
    raise DataError(f"data root is not a directory: {root}")
  class_dirs = [root] + sorted(path for path in root.iterdir() if path.is_dir())
  index = FolderIndex([], [], [], [])
  for class_dir in class_dirs:
    label = "" if class_dir == root else class_dir.name
    if label and ((class_dir / "s1").is_dir() or (class_dir / "s2").is_dir()) and not (
        _images(class_dir / "s1", _SAR_TAG) or _images(class_dir / "s2", _OPTICAL_TAG)):
      index.empty_classes.append(class_dir)
    for sar_path in _images(class_dir / "s1", _SAR_TAG):
      optical_path = class_dir / "s2" / sar_path.name.replace(_SAR_TAG, _OPTICAL_TAG)
      if not optical_path.is_file():
        index.sar_without_optical.append((sar_path, optical_path))
        continue
      index.pairs.append(Pair(
          s1=sar_path.relative_to(root).as_posix(),
          s2=optical_path.relative_to(root).as_posix(),
          label=label,
          scene=scene_of(sar_path.name)))
    for optical_path in _images(class_dir / "s2", _OPTICAL_TAG):
      sar_path = class_dir / "s1" / optical_path.name.replace(_OPTICAL_TAG, _SAR_TAG)
      if not sar_path.is_file():
        index.optical_without_sar.append((optical_path, sar_path))
  index.pairs.sort(key=lambda pair: pair.s1)
  return index


def find_pairs(root: str | os.PathLike[str]) -> list[Pair]:
  """Returns every SAR/optical pair under `root`, sorted by s1 path.

  Raises DataError naming both files when a SAR image has no optical twin, naming a class folder
  without images (an incomplete download), and explaining the layout when there are no pairs.
  Optical images without a SAR twin are ignored.
  """
  index = index_folder(root)
  if index.empty_classes:
    raise DataError(f"class folder {index.empty_classes[0]} has no images in s1/ or s2/ (an incomplete copy?): "
                    "fill or remove it")
  if index.sar_without_optical:
    sar_path, optical_path = index.sar_without_optical[0]
    raise DataError(f"SAR image {sar_path} has no optical twin: expected {optical_path}")
  if not index.pairs:
    raise DataError(
        f"no SAR/optical pairs found under {root}: expected ROOT/<class>/s1/*_s1_*.png "
        "with twins in ROOT/<class>/s2/ (or ROOT/s1/ and ROOT/s2/ directly); "
        f"image suffixes: {', '.join(IMAGE_SUFFIXES)}")
  return index.pairs


def make_split(
    pairs: Sequence[Pair],
    seed: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict:
  """Splits pairs into train/val/test so that no scene is in two splits, stratified by class.

  Each scene goes whole to one split (a pair whose name carries no scene is its own group). The
  scenes are placed so that each class's share of each split comes as close to `fractions` as
  whole scenes allow, and every split gets at least one scene; `split_counts` tells how close.

  Args:
    pairs: the pairs to split, e.g. from `find_pairs`.
    seed: seed of the order in which scenes of equal size are placed.
    fractions: target (train, val, test) fractions of each class.

  Returns:
    `{"data": {"train": [...], "val": [...], "test": [...]}}` with sorted s1 paths.
  """
  _check_fractions(fractions)
  groups = collections.defaultdict(list)
  for pair in pairs:
    groups[pair.scene or pair.s1].append(pair)
  if len(groups) < len(SPLIT_NAMES):
    raise DataError(
        f"cannot make disjoint train/val/test splits from {len(groups)} scenes: "
        f"need at least 3 so that each split gets one ({sorted(groups)})")
  sizes = collections.Counter(pair.label for pair in pairs)
  targets = {name: {label: fraction * size for label, size in sizes.items()}
             for name, fraction in zip(SPLIT_NAMES, fractions)}
  return _assign_groups(groups, targets, seed)


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
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
  partial.write_text(json.dumps(split, indent=2) + "\n")
  partial.replace(path)


def read_split(path: str | os.PathLike[str]) -> dict:
  """Reads and checks a split file in the original SAR2Optical format."""
  path = pathlib.Path(path)
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
