"""Finds SAR/optical pairs on disk: the folder layouts, scene ids, and images without a twin.

Two layouts are understood, both with the SEN1-2 naming where an s1 file's optical twin
has the same name with `_s1_` replaced by `_s2_`:

  ROOT/<class>/s1/ROIs1970_fall_s1_13_p265.png  ROOT/<class>/s2/ROIs1970_fall_s2_13_p265.png
  ROOT/s1/ROIs1970_fall_s1_13_p265.png          ROOT/s2/ROIs1970_fall_s2_13_p265.png

Splitting them is `splits`'s concern.
"""

import dataclasses
import os
import pathlib
import re

from sar2optical.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
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
