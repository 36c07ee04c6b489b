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


def find_pairs(root: str | os.PathLike[str]) -> list[Pair]:
  """Returns every SAR/optical pair under `root`, sorted by s1 path."""
  root = pathlib.Path(root)
  if not root.exists():
    raise DataError(f"data root not found: {root}")
  if not root.is_dir():
    raise DataError(f"data root is not a directory: {root}")
  class_dirs = [root] + sorted(path for path in root.iterdir() if path.is_dir())
  pairs = []
  for class_dir in class_dirs:
    sar_dir = class_dir / "s1"
    if not sar_dir.is_dir():
      continue
    label = "" if class_dir == root else class_dir.name
    for sar_path in sorted(sar_dir.iterdir()):
      if sar_path.suffix.lower() not in IMAGE_SUFFIXES or _SAR_TAG not in sar_path.name:
        continue
      optical_path = class_dir / "s2" / sar_path.name.replace(_SAR_TAG, _OPTICAL_TAG)
      if not optical_path.is_file():
        raise DataError(
            f"SAR image {sar_path} has no optical twin: expected {optical_path}")
      pairs.append(Pair(
          s1=sar_path.relative_to(root).as_posix(),
          s2=optical_path.relative_to(root).as_posix(),
          label=label,
          scene=scene_of(sar_path.name)))
  if not pairs:
    raise DataError(
        f"no SAR/optical pairs found under {root}: expected ROOT/<class>/s1/*_s1_*.png "
        "with twins in ROOT/<class>/s2/ (or ROOT/s1/ and ROOT/s2/ directly); "
        f"image suffixes: {', '.join(IMAGE_SUFFIXES)}")
  return sorted(pairs, key=lambda pair: pair.s1)


def make_split(
    pairs: Sequence[Pair],
    seed: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict:
  """Splits pairs into train/val/test so that no scene is in two splits.

  Pairs are grouped by scene when every pair has one, else each pair is its own group.
  Groups are shuffled with `seed`; test takes groups until it holds at least
  round(test_fraction * len(pairs)) pairs, val likewise, and train the rest. Each split
  gets at least one group.

  Args:
    pairs: the pairs to split, e.g. from `find_pairs`.
    seed: seed of the group shuffle.
    fractions: target (train, val, test) fractions of the pairs.

  Returns:
    `{"data": {"train": [...], "val": [...], "test": [...]}}` with sorted s1 paths.
  """
  if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
    raise DataError(
        f"split fractions must be three positive numbers (train, val, test) summing to 1, "
        f"got {tuple(fractions)}")
  by_scene = all(pair.scene is not None for pair in pairs)
  groups = collections.defaultdict(list)
  for pair in pairs:
    groups[pair.scene if by_scene else pair.s1].append(pair.s1)
  if len(groups) < 3:
    unit = "scenes" if by_scene else "pairs"
    raise DataError(
        f"cannot make disjoint train/val/test splits from {len(groups)} {unit}: "
        f"need at least 3 so that each split gets one ({sorted(groups)})")
  keys = sorted(groups)
  random.Random(seed).shuffle(keys)
  split = {}
  for name, fraction in (("test", fractions[2]), ("val", fractions[1])):
    target = round(fraction * len(pairs))
    taken = []
    # Leave at least one group for each split still to fill.
    groups_left_for_others = 2 if name == "test" else 1
    while len(keys) > groups_left_for_others and (not taken or len(taken) < target):
      taken.extend(groups[keys.pop(0)])
    split[name] = sorted(taken)
  split["train"] = sorted(s1 for key in keys for s1 in groups[key])
  return {"data": {name: split[name] for name in SPLIT_NAMES}}


def write_split(path: str | os.PathLike[str], split: dict) -> None:
  """Writes `split` as JSON, creating parent folders."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(split, indent=2) + "\n")


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
