"""One way from a config's `data` fields and a workdir to the run's split and the sources of its splits.

Training, validation, eval and convert all resolve their data here, for folders and TFDS builds
alike. The split a run uses is kept in `WORKDIR/split.json`:

- a TFDS build (`data.source = "tfds"`): the split the build was made with (its metadata);
- a folder: `data.split_file` when set, else the workdir's `split.json`, else a seeded split by
  scene (`splits.make_split`).

A writing resolve (`record=True`: training, convert) writes that file from process 0; a reading one
(eval) takes the workdir's file as the split the run trained with and writes nothing.
"""

import collections
import dataclasses
import pathlib
import posixpath
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from sar2optical.core import storage
from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import sources, splits

SPLIT_FILE = "split.json"


@dataclasses.dataclass(frozen=True)
class RunData:
  """A run's split (None when the workdir has none) and the sources of its splits, opened on demand."""
  split: dict | None
  description: str
  _open: Callable[[str], sources.PairSource]

  def source(self, name: str) -> sources.PairSource:
    """The pairs of split `name`: train, val, test, or (folders only) all."""
    return self._open(name)

  def size(self, name: str) -> int:
    """How many pairs the split file lists for `name` (0 without a split)."""
    return len(self.split["data"][name]) if self.split else 0


def resolve(data: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, seed: int, record: bool) -> RunData:
  """The run data of `data` (a config's `data` fields) for `workdir`; see the module docstring."""
  workdir = storage.as_path(workdir, "the workdir")
  if data.source == "tfds":
    return _tfds(data, workdir, record)
  return _folder(data, workdir, seed, record)


def _record(workdir: pathlib.Path, split: dict) -> None:
  if jax.process_index() == 0:
    splits.write_split(workdir / SPLIT_FILE, split)


def _tfds(data: ml_collections.ConfigDict, workdir: pathlib.Path, record: bool) -> RunData:
  """The splits of the sen1_2 build in `data.tfds_data_dir`."""
  if record and data.split_file:
    logging.warning("config.data.split_file is not used with data.source=tfds: the splits are the build's "
                    "(build with --split_file to choose them)")

  def open_split(name: str) -> sources.PairSource:
    if name == "all":
      raise ConfigError("--split=all: a TFDS build has the splits train, val and test; name one")
    return sources.TfdsSource(name, data_dir=data.tfds_data_dir, config=data.tfds_config)

  train = open_split("train")
  if record:
    _record(workdir, train.split_file)
  where = f"the sen1_2/{data.tfds_config} build in {data.tfds_data_dir or 'the TFDS default folder'}"
  return RunData(train.split_file, where, lambda name: train if name == "train" else open_split(name))


def _folder(data: ml_collections.ConfigDict, workdir: pathlib.Path, seed: int, record: bool) -> RunData:
  """The pairs under `data.root`, split as the module docstring says."""
  if not data.root:
    raise ConfigError("config.data.root: not set; point it at a SEN1-2 folder (or pass --data_root)")
  root = storage.resolved(storage.as_path(data.root, "config.data.root"))
  logging.info("Listing the pairs under %s…", root)
  all_pairs = pairs_lib.find_pairs(root, data.get("scene_pattern", ""),
                                   pairs_lib.parse_seasons(data.get("seasons", ""), "config.data.seasons"))
  recorded = workdir / SPLIT_FILE
  if not record:
    split = splits.read_split(recorded) if recorded.exists() else None
  elif data.split_file:
    split = splits.read_split(data.split_file)
    _record(workdir, split)
  elif recorded.exists():
    split = splits.read_split(recorded)
  else:
    split = splits.make_split(all_pairs, seed=seed)
    _record(workdir, split)

  def open_split(name: str) -> sources.PairSource:
    if split is None and name != "all":
      raise DataError(f"split file not found: {recorded} (score every pair of {root} with --split=all)")
    return sources.FolderSource(root, splits.select(all_pairs, split, name))

  return RunData(split, f"{len(all_pairs)} pairs in {root}", open_split)


def composition(source: sources.PairSource) -> str:
  """What a split holds, for the log: "agri 22, urban 22 (4 scenes)"; with a warning when that is one class or
  one scene only (a model scored on it, or validated on it, sees one kind of ground)."""
  names_and_labels = [source.name_and_label(index) for index in range(len(source))]
  classes = collections.Counter(label or "(no class)" for _, label in names_and_labels)
  scenes = {pairs_lib.scene_of(posixpath.basename(name)) for name, _ in names_and_labels} - {None}
  text = ", ".join(f"{label} {count}" for label, count in sorted(classes.items()))
  text += f" ({len(scenes)} scene{'s' * (len(scenes) != 1)})" if scenes else ""
  alone = [kind for kind, count in (("class", len(classes.keys() - {"(no class)"})), ("scene", len(scenes)))
           if count == 1]
  if alone and len(names_and_labels) > 1:
    text += f": one {' and one '.join(alone)} only, so scores on it speak for that ground alone"
  return text


def in_name_order(source: sources.PairSource) -> sources.PairSource:
  """`source` read in the order of its records' s1 paths, whatever order it stores them in.

  Scores aggregated over it (means, standard deviations, the other-target floor's pairing) are then
  the same for a folder and a TFDS build of the same pairs, to the last bit.
  """
  names = [source.name_and_label(i)[0] for i in range(len(source))]
  return sources.Reordered(source, np.argsort(names, kind="stable"))
