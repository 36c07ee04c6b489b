"""Finds SAR/optical pairs on disk: the folder layouts, scene ids, seasons, and images without a twin.

Three layouts, each recognised by itself (one root holds one kind):

  Kaggle SEN1-2   ROOT/<class>/s1/ROIs1970_fall_s1_13_p265.png  ↔ ROOT/<class>/s2/ROIs1970_fall_s2_13_p265.png
                  (or ROOT/s1/ and ROOT/s2/ directly)
  same-name       ROOT/[<class>/]s1/x.png ↔ ROOT/[<class>/]s2/x.png, or ROOT/[<class>/]A/x.png ↔ .../B/x.png
  original        ROOT/ROIs1158_spring/s1_1/ROIs1158_spring_s1_1_p1.png
                  ↔ ROOT/ROIs1158_spring/s2_1/ROIs1158_spring_s2_1_p1.png (SEN1-2 from mediaTUM: season
                  folders, one s1_<n>/s2_<n> folder pair per scene; ROOT may also be one season folder)

In s1/s2 and scene folders an image's twin is the file whose name has `_s1_` replaced by `_s2_` (the
same name when it has no `_s1_`, which makes the Kaggle and same-name layouts one); in A/B folders
the same name. A pair's label is its class folder ("" without one); in the original layout its
season (spring, summer, fall, winter), the grouping that per-class reports use. Scene ids come from
SEN1-2 names (`ROIs1970_fall_s1_13_p265` → `ROIs1970_fall_13`) or from a user's regex with a
`scene` group. Splitting them is `splits`'s concern.
"""

import dataclasses
import os
import re
from collections.abc import Sequence

from sar2optical.core import storage
from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data.images import IMAGE_SUFFIXES

SEASONS = ("spring", "summer", "fall", "winter")
CLASS_FOLDERS = "class folders"  # the Kaggle and same-name layouts
SEASON_FOLDERS = "season folders"  # the original layout
_TAGS = ("_s1_", "_s2_")
_SIDES = (("s1", "s2", _TAGS), ("A", "B", ("", "")))  # folder names of a pair's SAR and optical images
SIDE_FOLDERS = {name for sar, optical, _ in _SIDES for name in (sar, optical)}
_SCENE_PATTERN = re.compile(
    r"(?P<roi>ROIs\d+)_(?P<season>[A-Za-z]+)_s[12]_(?P<scene>\d+)_p\d+(?:\.\w+)?")
_SEASON_FOLDER = re.compile(r"ROIs\d+_(?P<season>[A-Za-z]+)")
_SCENE_FOLDER = re.compile(r"s[12]_(?P<number>\d+)")
LAYOUTS_HELP = ("expected ROOT/<class>/s1/ and ROOT/<class>/s2/ (or s1/ and s2/, or A/ and B/, directly), "
                "files named alike (_s1_ → _s2_ or the same name), or SEN1-2's season folders "
                "ROOT/ROIs1158_spring/s1_1/ with twins in s2_1/")


@dataclasses.dataclass(frozen=True)
class Pair:
  """One SAR/optical pair.

  Attributes:
    s1: POSIX path of the SAR image, relative to the data root.
    s2: POSIX path of the optical image, relative to the data root.
    label: class folder name, the season in the original layout, or "" when the root holds s1/ and s2/ directly.
    scene: scene id such as "ROIs1970_fall_13", or None if the name carries none.
  """
  s1: str
  s2: str
  label: str
  scene: str | None


def scene_of(filename: str, pattern: re.Pattern[str] | None = None) -> str | None:
  """The scene id of an image's file name, else None.

  Without `pattern`: "ROIs1970_fall_13" for "ROIs1970_fall_s1_13_p265.png". With one: its `scene`
  group where it matches (searched) the name.
  """
  if pattern is not None:
    match = pattern.search(filename)
    return match["scene"] if match else None
  match = _SCENE_PATTERN.fullmatch(filename)
  if match is None:
    return None
  return f"{match['roi']}_{match['season']}_{match['scene']}"


def scene_folder_scene(season_folder: str, folder: str) -> str | None:
  """"ROIs1158_spring_7" for the scene folder "s1_7" (or "s2_7") of "ROIs1158_spring", else None."""
  match = _SCENE_FOLDER.fullmatch(folder)
  return f"{season_folder}_{match['number']}" if match and _SEASON_FOLDER.fullmatch(season_folder) else None


def compile_scene_pattern(pattern: str, field: str) -> re.Pattern[str] | None:
  """`pattern` compiled (None when empty); ConfigError naming `field` unless it compiles with a `scene` group."""
  if not pattern:
    return None
  try:
    compiled = re.compile(pattern)
  except re.error as error:
    raise ConfigError(f"{field}: not a regular expression ({error}): {pattern!r}") from None
  if "scene" not in compiled.groupindex:
    raise ConfigError(f"{field}: needs a group named scene, e.g. (?P<scene>[a-z]+_\\d+); got {pattern!r}")
  return compiled


def season_of(pair: Pair) -> str | None:
  """The season of a pair with a SEN1-2 name ("fall" for ".../ROIs1970_fall_s1_13_p265.png"), else None."""
  match = _SCENE_PATTERN.fullmatch(pair.s1.rpartition("/")[2])
  return match["season"] if match else None


def parse_seasons(seasons: str, field: str) -> tuple[str, ...]:
  """"spring,summer" → ("spring", "summer"); "" → (); ConfigError naming `field` for another word."""
  names = tuple(name.strip() for name in seasons.split(",") if name.strip())
  unknown = [name for name in names if name not in SEASONS]
  if unknown:
    raise ConfigError(f"{field}: unknown season {unknown[0]!r}; expected some of {', '.join(SEASONS)}, comma-separated")
  return names


def in_seasons(pairs: Sequence[Pair], seasons: Sequence[str], root: str | os.PathLike[str]) -> list[Pair]:
  """The pairs of `seasons` (all pairs when empty); DataError naming `root` when none is of them."""
  if not seasons:
    return list(pairs)
  kept = [pair for pair in pairs if season_of(pair) in seasons]
  if not kept:
    raise DataError(f"no pairs of the seasons {', '.join(seasons)} under {root} (seasons are read from SEN1-2 "
                    "names such as ROIs1158_spring_s1_1_p1.png)")
  return kept


@dataclasses.dataclass(frozen=True)
class PairFolders:
  """Two folders whose images pair up: SAR in `sar`, optical in `optical`, all labelled `label`.

  `tags`: what a SAR name's twin has instead, ("_s1_", "_s2_"), or ("", "") for the same name.
  `where`: the folder to name when they hold no image (the class folder, or the scene folder).
  """
  sar: storage.Path
  optical: storage.Path
  label: str
  tags: tuple[str, str]
  where: storage.Path

  def twin(self, sar_name: str) -> str:
    return sar_name.replace(*self.tags, 1) if self.tags[0] else sar_name

  def sar_twin(self, optical_name: str) -> str:
    return optical_name.replace(self.tags[1], self.tags[0], 1) if self.tags[0] else optical_name


@dataclasses.dataclass(frozen=True)
class FolderIndex:
  """What a data root holds: its pairs and everything that keeps a file or folder from pairing.

  Attributes:
    pairs: every SAR/optical pair, sorted by s1 path.
    sar_without_optical: (SAR image, the optical twin it lacks) paths.
    optical_without_sar: (optical image, the SAR twin it lacks) paths.
    empty_folders: folder pairs (or season folders) without an image.
    lone_folders: (scene folder, its missing twin folder), e.g. s1_7 without s2_7; their files are not listed above.
    layouts: the layouts found, each with the first folder of it.
  """
  pairs: list[Pair]
  sar_without_optical: list[tuple[storage.Path, storage.Path]]
  optical_without_sar: list[tuple[storage.Path, storage.Path]]
  empty_folders: list[PairFolders]
  lone_folders: list[tuple[storage.Path, storage.Path]]
  layouts: dict[str, storage.Path]


def _subfolders(folder: storage.Path) -> list[str]:
  return [name for name, is_folder in storage.folder_entries(folder) if is_folder]


def _image_names(folder: storage.Path) -> list[str]:
  """The names of the image files in `folder` (none if it is missing), sorted."""
  if not folder.is_dir():
    return []
  return [name for name, is_folder in storage.folder_entries(folder)
          if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not is_folder]


def _scene_folders(season: storage.Path, names: set[str], index: FolderIndex) -> list[PairFolders]:
  """The s1_<n>/s2_<n> folder pairs among `names`, a season folder's subfolders; lone and empty ones go to `index`."""
  label = _SEASON_FOLDER.fullmatch(season.name)["season"]
  numbers = sorted({match["number"] for match in map(_SCENE_FOLDER.fullmatch, names) if match}, key=int)
  if not numbers:
    index.empty_folders.append(PairFolders(season / "s1_<n>", season / "s2_<n>", label, _TAGS, season))
  found = []
  for number in numbers:
    sar, optical = season / f"s1_{number}", season / f"s2_{number}"
    if sar.name in names and optical.name in names:
      found.append(PairFolders(sar, optical, label, _TAGS, sar))
    else:
      index.lone_folders.append((sar, optical) if sar.name in names else (optical, sar))
  return found


def _pair_folders(root: storage.Path, index: FolderIndex) -> list[PairFolders]:
  """Every folder pair under `root`: the root's and its subfolders' s1/s2 or A/B folders, and scene folders."""
  found = []
  for folder in [root] + [root / name for name in _subfolders(root)]:
    names = set(_subfolders(folder))
    season = _SEASON_FOLDER.fullmatch(folder.name) and not names & SIDE_FOLDERS
    if season and (folder != root or any(map(_SCENE_FOLDER.fullmatch, names))):
      found += _scene_folders(folder, names, index)
      index.layouts.setdefault(SEASON_FOLDERS, folder)
      continue
    label = "" if folder == root else folder.name
    for sar, optical, tags in _SIDES:
      if sar in names or optical in names:
        found.append(PairFolders(folder / sar, folder / optical, label, tags, folder))
        index.layouts.setdefault(CLASS_FOLDERS, folder)
  return found


def _pair_up(root: storage.Path, folders: PairFolders, scene_pattern: re.Pattern[str] | None,
             index: FolderIndex) -> None:
  """Adds the pairs of `folders` to `index`, and its images without a twin."""
  sar_names = _image_names(folders.sar)
  optical_names = set(_image_names(folders.optical))
  if not sar_names and not optical_names:
    index.empty_folders.append(folders)
    return
  sar_dir = folders.sar.relative_to(root).as_posix() + "/"
  optical_dir = folders.optical.relative_to(root).as_posix() + "/"
  claimed = set()
  for name in sar_names:
    twin = folders.twin(name)
    if twin not in optical_names:
      index.sar_without_optical.append((folders.sar / name, folders.optical / twin))
      continue
    claimed.add(twin)
    index.pairs.append(Pair(sar_dir + name, optical_dir + twin, folders.label, scene_of(name, scene_pattern)))
  for name in sorted(optical_names - claimed):
    index.optical_without_sar.append((folders.optical / name, folders.sar / folders.sar_twin(name)))


def index_folder(root: str | os.PathLike[str], scene_pattern: str = "") -> FolderIndex:
  """Indexes the pairs under `root` and what keeps files from pairing; raises only for a bad root or pattern.

  `scene_pattern`: a regex with a `scene` group searched in SAR file names; empty: SEN1-2 names.
  """
  root = storage.as_path(root, "the data root")
  if not root.exists():
    raise DataError(f"data root not found: {root}")
  if not root.is_dir():
    raise DataError(f"data root is not a directory: {root}")
  pattern = compile_scene_pattern(scene_pattern, "the scene pattern (config.data.scene_pattern, --scene_pattern)")
  index = FolderIndex([], [], [], [], [], {})
  for folders in _pair_folders(root, index):
    _pair_up(root, folders, pattern, index)
  index.pairs.sort(key=lambda pair: pair.s1)
  return index


def layout_problem(index: FolderIndex, root: str | os.PathLike[str]) -> str | None:
  """Why `root` as a whole cannot be read (layouts mixed, or no pair found and nothing else to blame), else None."""
  if len(index.layouts) > 1:
    return (f"{root} mixes layouts: class folders such as {index.layouts[CLASS_FOLDERS]} and SEN1-2 season "
            f"folders such as {index.layouts[SEASON_FOLDERS]}; point the root at one of them")
  if not index.pairs and not (index.empty_folders or index.lone_folders or index.sar_without_optical
                              or index.optical_without_sar):
    return f"no SAR/optical pairs found under {root}: {LAYOUTS_HELP}; image suffixes: {', '.join(IMAGE_SUFFIXES)}"
  return None


def lone_folder_message(index: FolderIndex) -> str:
  """One line on the first scene folder without its twin, and how many more its season folder has."""
  lone, missing = index.lone_folders[0]
  more = sum(folder.parent == lone.parent for folder, _ in index.lone_folders) - 1
  return (f"scene folder {lone} has no twin folder {missing}"
          + (f" (and {more} more scene folders of {lone.parent} lack theirs: a half-extracted download?)"
             if more else ""))


def find_pairs(root: str | os.PathLike[str], scene_pattern: str = "", seasons: Sequence[str] = ()) -> list[Pair]:
  """Returns every SAR/optical pair under `root` (of `seasons` when given: `in_seasons`), sorted by s1 path.

  Raises DataError naming the folders when layouts are mixed or a scene folder lacks its twin, naming
  a folder without images (an incomplete download), naming both files when a SAR image has no optical
  twin, and explaining the layouts when there are no pairs. Optical images without a SAR twin are ignored.
  """
  index = index_folder(root, scene_pattern)
  if len(index.layouts) > 1:
    raise DataError(layout_problem(index, root))
  if index.lone_folders:
    raise DataError(lone_folder_message(index))
  if index.empty_folders:
    empty = index.empty_folders[0]
    raise DataError(f"folder {empty.where} has no images in {empty.sar.name}/ or {empty.optical.name}/ "
                    "(an incomplete copy?): fill or remove it")
  if index.sar_without_optical:
    sar_path, optical_path = index.sar_without_optical[0]
    raise DataError(f"SAR image {sar_path} has no optical twin: expected {optical_path}")
  if not index.pairs:
    raise DataError(layout_problem(index, root))
  return in_seasons(index.pairs, seasons, root)
