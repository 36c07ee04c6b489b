"""The layouts beyond the Kaggle copy: SEN1-2's own season folders and same-name folders, their scenes,
seasons and splits, what `check` says about them, and the bad input they bring."""

import collections
import logging
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SEN12_ROOT, requires_sen12, tiny_config
from PIL import Image

from sar2optical.configs import fields
from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data import check, pipeline, resolve, sources, splits, synthetic
from sar2optical.data import pairs as pairs_lib


@pytest.fixture(scope="module")
def original_root(tmp_path_factory) -> pathlib.Path:
  """The demo set in SEN1-2's original layout: 4 seasons × 6 pairs of 32², scenes of up to 3 patches."""
  root = tmp_path_factory.mktemp("original")
  synthetic.generate(root, pairs_per_class=6, size=32, layout="original")
  return root


def _rearranged(root: pathlib.Path) -> pathlib.Path:
  """The shared Kaggle-layout pairs linked into SEN1-2's original layout under `root`."""
  for sar in SEN12_ROOT.glob("*/s1/*.png"):
    season_folder, scene = re.fullmatch(r"(ROIs\d+_[a-z]+)_s1_(\d+)_p\d+\.png", sar.name).groups()
    for side, path in (("s1", sar), ("s2", sar.parent.parent / "s2" / sar.name.replace("_s1_", "_s2_"))):
      (root / season_folder / f"{side}_{scene}").mkdir(parents=True, exist_ok=True)
      (root / season_folder / f"{side}_{scene}" / path.name).symlink_to(path)
  return root


def _png(path: pathlib.Path, channels: int, size: int = 8) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.zeros((size, size, channels) if channels == 3 else (size, size), np.uint8)).save(path)


def _run_module(module: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO, timeout=120,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})


# SEN1-2's original layout.


def test_original_layout_pairs_by_scene_folder_with_seasons_as_classes(original_root):
  pairs = pairs_lib.find_pairs(original_root)
  assert collections.Counter(pair.label for pair in pairs) == dict.fromkeys(pairs_lib.SEASONS, 6)
  assert pairs[0] == pairs_lib.Pair("ROIs9000_fall/s1_5/ROIs9000_fall_s1_5_p1.png",
                                    "ROIs9000_fall/s2_5/ROIs9000_fall_s2_5_p1.png", "fall", "ROIs9000_fall_5")
  for pair in pairs:
    scene_folder = pair.s1.split("/")[1]
    assert pair.scene == f"ROIs9000_{pair.label}_{scene_folder[3:]}" and pair.s2 == pair.s1.replace("s1_", "s2_")
  split = splits.make_split(pairs, seed=0)
  assert splits.shared_scenes(split, pairs) == [] and all(split["data"].values())
  assert [pair.label for pair in pairs_lib.find_pairs(original_root, seasons=("spring", "summer"))] == (
      ["spring"] * 6 + ["summer"] * 6)


def test_one_season_folder_as_the_root(original_root):
  pairs = pairs_lib.find_pairs(original_root / "ROIs9000_winter")
  assert len(pairs) == 6 and {pair.label for pair in pairs} == {"winter"} and pairs[0].s1.startswith("s1_")


@requires_sen12
def test_shared_pairs_rearranged_into_the_original_layout(tmp_path):
  root = _rearranged(tmp_path)
  kaggle = pairs_lib.find_pairs(SEN12_ROOT)
  pairs = pairs_lib.find_pairs(root)
  assert collections.Counter(pair.label for pair in pairs) == {"summer": 33, "fall": 61}
  assert collections.Counter(pair.scene for pair in pairs) == collections.Counter(pair.scene for pair in kaggle)
  assert pairs[0].s1 == "ROIs1868_summer/s1_59/ROIs1868_summer_s1_59_p10.png"
  split = splits.make_split(pairs, seed=0)
  assert splits.shared_scenes(split, pairs) == []
  assert len(pairs_lib.find_pairs(root, seasons=("fall",))) == 61
  assert list(check.format_report(check.check_folder(root), root)) == [f"{root}: 94 pairs (fall 61, summer 33)",
                                                                      "no problems found"]


def test_training_data_of_the_original_layout_with_a_season_filter(original_root, tmp_path):
  config = tiny_config(original_root, **{"data.seasons": "spring,summer,fall"})
  fields.validate(config)
  run_data = resolve.resolve(config.data, tmp_path, seed=0, record=True)
  train = run_data.source("train")
  labels = {train.name_and_label(index)[1] for index in range(len(train))}
  assert labels <= {"spring", "summer", "fall"} and sum(map(run_data.size, splits.SPLIT_NAMES)) == 18
  batch = next(pipeline.train_iterator(train, image_size=32, in_channels=1, global_batch_size=4, seed=0))
  assert batch["sar"].shape == (4, 32, 32, 1) and batch["optical"].shape == (4, 32, 32, 3)
  fall_only = resolve.resolve(tiny_config(original_root, **{"data.seasons": "winter"}).data, tmp_path, seed=0,
                              record=False).source("all")
  assert {fall_only.name_and_label(index)[1] for index in range(len(fall_only))} == {"winter"}


# Same-name folders.


@pytest.mark.parametrize("sar, optical", [("s1", "s2"), ("A", "B")])
@pytest.mark.parametrize("class_folder", ["", "coast"])
def test_same_name_folders_pair_by_name(tmp_path, sar, optical, class_folder):
  for tile in ("volkov_003_x0_y0", "volkov_003_x384_y0", "volkov_017_x0_y0"):
    _png(tmp_path / class_folder / sar / f"{tile}.png", 1)
    _png(tmp_path / class_folder / optical / f"{tile}.png", 3)
  prefix = f"{class_folder}/" if class_folder else ""
  pairs = pairs_lib.find_pairs(tmp_path, r"(?P<scene>volkov_\d+)_x")
  name = "volkov_003_x384_y0.png"
  assert pairs[1] == pairs_lib.Pair(f"{prefix}{sar}/{name}", f"{prefix}{optical}/{name}", class_folder, "volkov_003")
  assert [pair.scene for pair in pairs] == ["volkov_003", "volkov_003", "volkov_017"]


def test_names_without_a_scene_split_per_pair_with_a_warning(tmp_path, caplog):
  for tile in range(6):
    _png(tmp_path / "A" / f"tile{tile}.tif", 1)
    _png(tmp_path / "B" / f"tile{tile}.tif", 3)
  pairs = pairs_lib.find_pairs(tmp_path)
  with caplog.at_level(logging.WARNING):
    split = splits.make_split(pairs, seed=0)
  assert sorted(sum(split["data"].values(), [])) == [pair.s1 for pair in pairs]
  assert "6 of 6 pairs carry no scene id" in caplog.text and "config.data.scene_pattern" in caplog.text


@pytest.mark.parametrize("field, value, message", [
    ("data.scene_pattern", r"volkov_(\d+)", "needs a group named scene"),
    ("data.scene_pattern", r"(?P<scene>[", "not a regular expression"),
    ("data.seasons", "spring,autumn", "unknown season 'autumn'"),
])
def test_bad_layout_fields_are_named(field, value, message):
  with pytest.raises(ConfigError, match=rf"^config\.{field}: {message}"):
    fields.validate(tiny_config("/data", **{field: value}))


# Bad input and check.


def test_half_extracted_season_names_the_scene_folders(original_root, tmp_path):
  root = tmp_path / "sen12"
  synthetic.generate(root, pairs_per_class=6, size=32, layout="original")
  for number in (1, 2):
    os.rename(root / f"ROIs9000_spring/s2_{number}", tmp_path / f"s2_{number}")  # the tarball ended before them
  with pytest.raises(DataError, match=rf"^scene folder {root}/ROIs9000_spring/s1_1 has no twin folder "
                                      rf"{root}/ROIs9000_spring/s2_1 \(and 1 more scene folders of "
                                      rf"{root}/ROIs9000_spring lack theirs: a half-extracted download\?\)$"):
    pairs_lib.find_pairs(root)
  report = check.check_folder(root, image_size=32)
  assert [(problem.kind, problem.path.name) for problem in report.problems] == [("unpaired", "s1_1"),
                                                                                 ("unpaired", "s1_2")]
  lines = list(check.format_report(report, root))
  assert lines[1:] == [
      "2 problems: 2 unpaired",
      "ROIs9000_spring ROIs9000_spring_1: 1 problem",
      f"  unpaired    {root}/ROIs9000_spring/s1_1: scene folder without its twin folder {root}/ROIs9000_spring/s2_1",
      "ROIs9000_spring ROIs9000_spring_2: 1 problem",
      f"  unpaired    {root}/ROIs9000_spring/s1_2: scene folder without its twin folder {root}/ROIs9000_spring/s2_2"]


def test_mixed_layouts_name_a_folder_of_each(original_root, tmp_path):
  root = tmp_path / "mixed"
  synthetic.generate(root, pairs_per_class=3, size=32, layout="original")
  _png(root / "agri" / "s1" / "ROIs1970_fall_s1_1_p1.png", 1)
  _png(root / "agri" / "s2" / "ROIs1970_fall_s2_1_p1.png", 3)
  with pytest.raises(DataError, match=rf"^{root} mixes layouts: class folders such as {root}/agri and SEN1-2 "
                                      rf"season folders such as {root}/ROIs9000_fall; point the root at one of them$"):
    pairs_lib.find_pairs(root)
  report = check.check_folder(root, image_size=8)
  assert [(problem.kind, problem.path) for problem in report.problems if problem.kind == "layout"] == [("layout", root)]


def test_check_groups_problems_by_season_and_scene_alike_in_worker_processes(tmp_path):
  root = tmp_path / "sen12"
  synthetic.generate(root, pairs_per_class=6, size=32, layout="original")
  (root / "ROIs9000_fall/s2_5/ROIs9000_fall_s2_5_p2.png").write_bytes(b"cut short")
  (root / "ROIs9000_winter/s1_7/ROIs9000_winter_s1_7_p1.png").unlink()
  (root / "ROIs9000_summer/s1_9").mkdir()
  (root / "ROIs9000_summer/s2_9").mkdir()
  report = check.check_folder(root, image_size=32, workers=2, threads=2)
  assert report == check.check_folder(root, image_size=32)
  assert report.pairs_per_class == {"fall": 6, "spring": 6, "summer": 6, "winter": 5}
  headers = [line for line in check.format_report(report, root) if not line.startswith(" ")][1:]
  assert headers == ["3 problems: 1 empty, 1 unpaired, 1 unreadable", "ROIs9000_fall ROIs9000_fall_5: 1 problem",
                     "ROIs9000_summer ROIs9000_summer_9: 1 problem", "ROIs9000_winter ROIs9000_winter_7: 1 problem"]


@pytest.mark.parametrize("make", [lambda root: None, lambda root: _png(root / "images" / "x.png", 3)],
                         ids=["empty root", "unknown layout"])
def test_check_calls_a_root_without_pairs_a_problem(tmp_path, make):
  make(tmp_path)
  run = _run_module("sar2optical.commands.check", f"--root={tmp_path}")
  assert run.returncode == 1, run.stderr[-2000:]
  assert run.stdout.splitlines()[:3] == [f"{tmp_path}: 0 pairs (none)", "1 problems: 1 layout",
                                         f"{tmp_path}: 1 problem"]
  assert f"layout      {tmp_path}: no SAR/optical pairs found under {tmp_path}: expected" in run.stdout


# The TFDS build.


def test_tfds_build_of_the_original_layout_restarts_with_the_shards_it_finished(tmp_path):
  from sar2optical.data import build_tfds, sources  # pylint: disable=g-import-not-at-top (TFDS takes seconds)
  root, data_dir = tmp_path / "sen12", tmp_path / "tfds"
  synthetic.generate(root, pairs_per_class=6, size=32, layout="original")
  split = splits.make_split(pairs_lib.find_pairs(root), seed=0)
  last = root / split["data"]["test"][-1]
  intact = last.read_bytes()
  last.write_bytes(b"cut short")
  with pytest.raises(DataError, match=str(last)):
    build_tfds.build(str(root), data_dir=str(data_dir), examples_per_shard=4)
  finished = {path.name.split("-")[0] + path.name.split("-")[1]: path.stat().st_ino
              for path in data_dir.glob(".sen1_2_shards/pixels/*/*") if not path.name.endswith(".partial")}
  assert {name[:-5] for name in finished} == {"train", "val"} and len(finished) > 3
  last.write_bytes(intact)
  build_tfds.build(str(root), data_dir=str(data_dir), examples_per_shard=4)
  built = {path.name.split("-")[1].split(".")[0] + path.name.split("-")[2]: path.stat().st_ino
           for path in data_dir.glob("sen1_2/pixels/1.0.0/*.array_record-*")}
  assert {name: built[name] for name in finished} == finished  # moved in, not written again
  assert not list(data_dir.glob(".sen1_2_shards/pixels/*"))
  test = sources.TfdsSource("test", data_dir=str(data_dir))
  assert sorted(test.name_and_label(index)[0] for index in range(len(test))) == split["data"]["test"]
  assert {test.name_and_label(index)[1] for index in range(len(test))} <= set(pairs_lib.SEASONS)


@requires_sen12
def test_split_command_on_the_original_layout_with_a_season_filter(tmp_path):
  root = _rearranged(tmp_path / "sen12")
  run = _run_module("sar2optical.commands.split", f"--root={root}", "--seasons=fall", f"--output={tmp_path / 'split.json'}")
  assert run.returncode == 0, run.stderr[-2000:]
  assert f"of 61 pairs in {root}" in run.stdout and "scenes in more than one split: none" in run.stdout
  assert [line.split()[0] for line in run.stdout.splitlines()[2:4]] == ["fall", "all"]
  bad = _run_module("sar2optical.commands.split", f"--root={root}", "--scene_pattern=ROIs", "--output=x.json")
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
      "error: the scene pattern (config.data.scene_pattern, --scene_pattern): needs a group named scene, "
      "e.g. (?P<scene>[a-z]+_\\d+); got 'ROIs'")


def test_an_empty_season_folder_is_named(tmp_path):
  synthetic.generate(tmp_path, pairs_per_class=3, size=32, layout="original")
  (tmp_path / "ROIs2017_winter").mkdir()
  with pytest.raises(DataError, match=rf"^folder {tmp_path}/ROIs2017_winter has no images in s1_<n>/ or s2_<n>/"):
    pairs_lib.find_pairs(tmp_path)


@requires_sen12
def test_the_log_names_each_splits_classes_and_scenes_and_a_split_of_one(caplog):
  all_pairs = pairs_lib.find_pairs(SEN12_ROOT)
  split = splits.make_split(all_pairs, seed=0)
  described = {name: resolve.composition(sources.FolderSource(SEN12_ROOT, splits.select(all_pairs, split, name)))
               for name in ("train", "val")}
  assert described["train"] == "agri 33, urban 21 (2 scenes)"  # the shared pairs: one scene per class
  assert described["val"] == ("grassland 20 (1 scene): one class and one scene only, so scores on it speak for that "
                              "ground alone")
