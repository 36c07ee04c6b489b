"""Tests of sar2optical.data: pair discovery, splits, image decoding and grain pipelines."""

import collections
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import SEN12_ROOT, load_pair, requires_sen12
from PIL import Image

from sar2optical.core.errors import DataError
from sar2optical.data import images, pipeline, sources, splits
from sar2optical.data import pairs as pairs_lib

SEN12_COUNTS = {"agri": 33, "barrenland": 20, "grassland": 20, "urban": 21}


def _write_image(path: pathlib.Path, array: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def _make_flat_dataset(root: pathlib.Path, num_pairs: int, size: int = 32) -> None:
  """Writes pairs whose SAR pixels all equal 10 * i, so each example is recognisable."""
  for i in range(num_pairs):
    name = f"ROIs1970_fall_s1_{i // 2}_p{i}.png"
    _write_image(root / "s1" / name, np.full((size, size), 10 * i, np.uint8))
    _write_image(root / "s2" / name.replace("_s1_", "_s2_"),
                 np.full((size, size, 3), (i, 2 * i, 3 * i), np.uint8))


def _example_ids(batch: dict[str, np.ndarray]) -> list[int]:
  """Recovers i from the SAR pixels (10 * i) of a `_make_flat_dataset` batch."""
  return [int(sar[0, 0, 0]) // 10 for sar in batch["sar"]]


@pytest.fixture
def flat_root(tmp_path: pathlib.Path) -> pathlib.Path:
  _make_flat_dataset(tmp_path, num_pairs=12)
  return tmp_path


# Pair discovery.


@requires_sen12
def test_find_pairs_on_real_sample():
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  assert len(pairs) == 94
  assert collections.Counter(pair.label for pair in pairs) == SEN12_COUNTS
  assert pairs == sorted(pairs, key=lambda pair: pair.s1)
  assert pairs == pairs_lib.find_pairs(str(SEN12_ROOT))
  for pair in pairs:
    assert pair.s1.startswith(f"{pair.label}/s1/")
    assert (SEN12_ROOT / pair.s1).is_file() and (SEN12_ROOT / pair.s2).is_file()
    assert pair.s2 == pair.s1.replace("/s1/", "/s2/").replace("_s1_", "_s2_")
  assert {pair.scene for pair in pairs} == {
      "ROIs1868_summer_59", "ROIs1970_fall_114", "ROIs1970_fall_115", "ROIs1970_fall_13"}


def test_find_pairs_on_flat_layout(tmp_path):
  _make_flat_dataset(tmp_path, num_pairs=3)
  (tmp_path / "s1" / "notes.txt").write_text("not an image")
  _write_image(tmp_path / "s1" / "no_tag.png", np.zeros((4, 4), np.uint8))  # same-name twins pair too
  _write_image(tmp_path / "s2" / "no_tag.png", np.zeros((4, 4, 3), np.uint8))
  pairs = pairs_lib.find_pairs(tmp_path)
  assert pairs == [
      pairs_lib.Pair(f"s1/ROIs1970_fall_s1_{i // 2}_p{i}.png",
                     f"s2/ROIs1970_fall_s2_{i // 2}_p{i}.png", "", f"ROIs1970_fall_{i // 2}")
      for i in range(3)] + [pairs_lib.Pair("s1/no_tag.png", "s2/no_tag.png", "", None)]


@pytest.mark.parametrize("filename, scene", [
    ("ROIs1970_fall_s1_13_p265.png", "ROIs1970_fall_13"),
    ("ROIs1868_summer_s2_59_p10.tif", "ROIs1868_summer_59"),
    ("ROIs2017_winter_s1_146_p1", "ROIs2017_winter_146"),
    ("scene_s1_001.png", None),
    ("ROIsXXXX_s1_59_p10.png", None),
])
def test_scene_of(filename, scene):
  assert pairs_lib.scene_of(filename) == scene


def test_find_pairs_missing_root(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(DataError, match=str(missing)):
    pairs_lib.find_pairs(missing)


def test_find_pairs_root_is_a_file(tmp_path):
  file = tmp_path / "data.txt"
  file.write_text("")
  with pytest.raises(DataError, match="not a directory"):
    pairs_lib.find_pairs(file)


def test_find_pairs_without_pairs_explains_layout(tmp_path):
  (tmp_path / "agri" / "images").mkdir(parents=True)
  with pytest.raises(DataError, match=r"no SAR/optical pairs found .*<class>/s1"):
    pairs_lib.find_pairs(tmp_path)


def test_find_pairs_unpaired_sar_names_both_files(tmp_path):
  _make_flat_dataset(tmp_path / "urban", num_pairs=2)
  (tmp_path / "urban" / "s2" / "ROIs1970_fall_s2_0_p1.png").unlink()
  with pytest.raises(DataError) as error:
    pairs_lib.find_pairs(tmp_path)
  assert str(tmp_path / "urban/s1/ROIs1970_fall_s1_0_p1.png") in str(error.value)
  assert str(tmp_path / "urban/s2/ROIs1970_fall_s2_0_p1.png") in str(error.value)


# Splits.


@requires_sen12
def test_make_split_on_real_sample_is_scene_disjoint():
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  split = splits.make_split(pairs, seed=0)
  assert split == splits.make_split(pairs, seed=0)
  listed = [s1 for name in splits.SPLIT_NAMES for s1 in split["data"][name]]
  assert sorted(listed) == [pair.s1 for pair in pairs]
  scenes = {name: {pair.scene for pair in splits.select(pairs, split, name)}
            for name in splits.SPLIT_NAMES}
  assert [len(scenes[name]) for name in splits.SPLIT_NAMES] == [2, 1, 1]
  assert not scenes["train"] & scenes["val"]
  assert not scenes["train"] & scenes["test"]
  assert not scenes["val"] & scenes["test"]
  counts = splits.split_counts(split, pairs)
  assert set(counts) == set(splits.SPLIT_NAMES)
  for label, total in SEN12_COUNTS.items():
    assert sum(counts[name][label] for name in counts) == total
  assert sum(counts["test"].values()) == len(split["data"]["test"])


@requires_sen12
def test_make_split_seed_changes_assignment():
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  made = {json.dumps(splits.make_split(pairs, seed)) for seed in range(10)}
  assert len(made) > 1


def test_make_split_without_scenes_splits_by_pair():
  pairs = [pairs_lib.Pair(f"s1/{i}_s1_.png", f"s2/{i}_s2_.png", "", None) for i in range(20)]
  split = splits.make_split(pairs, seed=3)
  assert [len(split["data"][name]) for name in ("train", "val", "test")] == [16, 2, 2]
  listed = [s1 for name in splits.SPLIT_NAMES for s1 in split["data"][name]]
  assert sorted(listed) == sorted(pair.s1 for pair in pairs)


def test_make_split_needs_three_scenes():
  pairs = [pairs_lib.Pair(f"s1/a_s1_{i}.png", f"s2/a_s2_{i}.png", "", f"scene{i % 2}")
           for i in range(10)]
  with pytest.raises(DataError, match="2 scenes"):
    splits.make_split(pairs, seed=0)


def test_make_split_rejects_bad_fractions():
  pairs = [pairs_lib.Pair(f"s1/{i}_s1_.png", f"s2/{i}_s2_.png", "", None) for i in range(5)]
  with pytest.raises(DataError, match="fractions"):
    splits.make_split(pairs, seed=0, fractions=(0.5, 0.5, 0.5))


def test_split_round_trip(flat_root, tmp_path):
  pairs = pairs_lib.find_pairs(flat_root)
  split = splits.make_split(pairs, seed=1)
  path = tmp_path / "runs" / "split.json"
  splits.write_split(path, split)
  assert splits.read_split(path) == split


@requires_sen12
def test_read_original_split_format(tmp_path):
  # Written like the original SAR2Optical Sentinel.save_split: indent 2, unsorted entries.
  original = {"data": {
      "train": ["urban/s1/ROIs1970_fall_s1_13_p265.png", "agri/s1/ROIs1868_summer_s1_59_p10.png"],
      "val": ["barrenland/s1/ROIs1970_fall_s1_114_p1.png"],
      "test": [],
  }}
  path = tmp_path / "split.json"
  path.write_text(json.dumps(original, indent=2))
  split = splits.read_split(path)
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  train = splits.select(pairs, split, "train")
  assert [pair.s1 for pair in train] == sorted(original["data"]["train"])
  assert [pair.label for pair in train] == ["agri", "urban"]
  assert splits.select(pairs, split, "test") == []
  assert splits.select(pairs, split, "all") == pairs


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"train": []}', '"data"'),
    ('{"data": {"train": [], "test": []}}', "data.val"),
    ('{"data": {"train": [1], "val": [], "test": []}}', "data.train"),
])
def test_read_split_errors_name_the_file(tmp_path, content, message):
  path = tmp_path / "split.json"
  if content is not None:
    path.write_text(content)
  with pytest.raises(DataError, match=message) as error:
    splits.read_split(path)
  assert str(path) in str(error.value)


def test_select_errors(flat_root):
  pairs = pairs_lib.find_pairs(flat_root)
  split = {"data": {"train": [pairs[0].s1, "s1/gone_s1_.png"], "val": [], "test": []}}
  with pytest.raises(DataError, match=r"data\.train\[1\] = 's1/gone_s1_\.png'"):
    splits.select(pairs, split, "train")
  with pytest.raises(DataError, match="unknown split 'dev'"):
    splits.select(pairs, split, "dev")


def _kaggle_like_pairs(scenes_per_class: dict[str, list[int]]) -> list[pairs_lib.Pair]:
  """In-memory pairs: for each class, scenes of the given sizes (scene ids unique over classes)."""
  pairs, scene = [], 0
  for label, sizes in scenes_per_class.items():
    for size in sizes:
      scene += 1
      pairs += [pairs_lib.Pair(f"{label}/s1/ROIs1970_fall_s1_{scene}_p{i}.png",
                               f"{label}/s2/ROIs1970_fall_s2_{scene}_p{i}.png", label, f"ROIs1970_fall_{scene}")
                for i in range(size)]
  return sorted(pairs, key=lambda pair: pair.s1)


_KAGGLE_LIKE = {"agri": [900, 700, 650, 600, 450, 400, 300], "barrenland": [1200, 800, 700, 500, 450, 350],
                "grassland": [1000, 900, 600, 500, 400, 300, 300], "urban": [500] * 4 + [400] * 5}


def test_scene_split_keeps_every_scene_in_one_split_and_stratifies_by_class():
  pairs = _kaggle_like_pairs(_KAGGLE_LIKE)
  assert len(pairs) == 16_000
  split = splits.make_split(pairs, seed=0)
  assert splits.shared_scenes(split, pairs) == []
  counts = splits.split_counts(split, pairs)
  for label, sizes in _KAGGLE_LIKE.items():
    total = sum(sizes)
    assert sum(counts[name][label] for name in splits.SPLIT_NAMES) == total
    for name, fraction in (("val", 0.1), ("test", 0.1)):
      # As close to 10 % as whole scenes allow: off by less than the class's smallest scene.
      assert abs(counts[name][label] - fraction * total) < min(sizes), (name, label, counts)


@pytest.mark.parametrize("kwargs, per_split", [
    ({"fractions": (0.8, 0.1, 0.1)}, {"train": 3200, "val": 400, "test": 400}),  # The original's 12,800/1,600/1,600.
    ({"per_class": 250}, {"train": 3500, "val": 250, "test": 250}),  # The seed document's 14,000/1,000/1,000.
])
def test_patch_splits_give_exact_counts_per_class(kwargs, per_split):
  pairs = _kaggle_like_pairs({label: [1000] * 4 for label in ("agri", "barrenland", "grassland", "urban")})
  split = splits.make_patch_split(pairs, seed=0, **kwargs)
  assert splits.split_counts(split, pairs) == {
      name: dict.fromkeys(("agri", "barrenland", "grassland", "urban"), n) for name, n in per_split.items()}
  assert split == splits.make_patch_split(pairs, seed=0, **kwargs)
  assert split != splits.make_patch_split(pairs, seed=1, **kwargs)
  assert len(splits.shared_scenes(split, pairs)) == 16  # Per patch: scenes leak.


def test_original_split_apportions_uneven_classes():
  pairs = _kaggle_like_pairs({"agri": [33], "urban": [21], "grassland": [20], "barrenland": [20]})
  counts = splits.split_counts(splits.make_patch_split(pairs, 0, fractions=(0.8, 0.1, 0.1)), pairs)
  assert sum(counts["val"].values()) == sum(counts["test"].values()) == round(0.1 * 94)
  assert counts["val"] == {"agri": 3, "barrenland": 2, "grassland": 2, "urban": 2}


def test_balanced_split_names_a_class_too_small():
  pairs = _kaggle_like_pairs({"agri": [600], "urban": [400]})
  with pytest.raises(DataError, match="class 'urban' has 400 pairs"):
    splits.make_patch_split(pairs, seed=0, per_class=200)


def _run_module(module: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        cwd=pathlib.Path(__file__).resolve().parents[1], check=False, timeout=120)


@requires_sen12
def test_split_command_prints_counts_per_class_and_split(tmp_path):
  output = tmp_path / "split.json"
  run = _run_module("sar2optical.commands.split", f"--root={SEN12_ROOT}", "--kind=scene", f"--output={output}")
  assert run.returncode == 0, run.stderr
  split = splits.read_split(output)
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  assert splits.shared_scenes(split, pairs) == []
  counts = splits.split_counts(split, pairs)
  for label, total in SEN12_COUNTS.items():
    home = next(name for name in splits.SPLIT_NAMES if counts[name][label])
    assert counts[home][label] == total  # One scene per class: each class lies wholly in one split,
    assert f"{label} ({home})" in run.stdout  # and the printed counts say so,
  assert "scenes in more than one split: none" in run.stdout
  assert "eval.py --split=all" in run.stdout  # and where to report per class.
  assert run.stdout.count(" 20 (100%)") == 2
  original = _run_module("sar2optical.commands.split", f"--root={SEN12_ROOT}", f"--split_file={output}")
  assert original.stdout.splitlines()[1:] == run.stdout.splitlines()[1:]


# Checking a folder.


def test_check_reports_every_problem_with_its_path(tmp_path):
  from sar2optical.data import check  # pylint: disable=g-import-not-at-top
  _make_flat_dataset(tmp_path / "agri", num_pairs=3, size=8)
  _make_flat_dataset(tmp_path / "urban", num_pairs=6, size=8)
  urban = tmp_path / "urban"
  (urban / "s2" / "ROIs1970_fall_s2_0_p1.png").unlink()
  _write_image(urban / "s2" / "ROIs1970_fall_s2_9_p99.png", np.zeros((8, 8, 3), np.uint8))
  (urban / "s1" / "ROIs1970_fall_s1_1_p2.png").write_bytes(b"not a png")
  _write_image(urban / "s1" / "ROIs1970_fall_s1_1_p3.png", np.zeros((8, 8, 3), np.uint8))
  _write_image(urban / "s2" / "ROIs1970_fall_s2_2_p4.png", np.zeros((16, 8, 3), np.uint8))
  report = check.check_folder(tmp_path, image_size=8)
  assert report.pairs_per_class == {"agri": 3, "urban": 5}
  found = {(problem.kind, problem.path.relative_to(tmp_path).as_posix()) for problem in report.problems}
  assert found == {
      ("unpaired", "urban/s1/ROIs1970_fall_s1_0_p1.png"),
      ("unpaired", "urban/s2/ROIs1970_fall_s2_9_p99.png"),
      ("unreadable", "urban/s1/ROIs1970_fall_s1_1_p2.png"),
      ("mode", "urban/s1/ROIs1970_fall_s1_1_p3.png"),
      ("size", "urban/s2/ROIs1970_fall_s2_2_p4.png"),
  }
  lines = list(check.format_report(report, tmp_path))
  assert lines[0] == f"{tmp_path}: 8 pairs (agri 3, urban 5)"
  assert lines[1] == "5 problems: 1 mode, 1 size, 2 unpaired, 1 unreadable"
  assert any(str(urban / "s1" / "ROIs1970_fall_s1_1_p3.png") in line and "RGB, expected L" in line
             for line in lines)


@requires_sen12
def test_check_command_on_real_sample():
  run = _run_module("sar2optical.commands.check", f"--root={SEN12_ROOT}")
  assert run.returncode == 0, run.stderr
  assert run.stdout.splitlines() == [
      f"{SEN12_ROOT}: 94 pairs (agri 33, barrenland 20, grassland 20, urban 21)", "no problems found"]


# Images.


@pytest.mark.parametrize("corrupt", [
    lambda png: b"definitely not a png",
    lambda png: png[: len(png) // 2],
], ids=["garbage", "truncated"])
def test_load_image_corrupt_file_names_it(tmp_path, corrupt):
  path = tmp_path / "scene_s1_0.png"
  _write_image(path, np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8))
  path.write_bytes(corrupt(path.read_bytes()))
  with pytest.raises(DataError, match="cannot decode") as error:
    images.load_image(path, "L", None)
  assert str(path) in str(error.value)


@pytest.mark.parametrize("image_mode, suffix", [
    ("L", ".png"), ("RGB", ".png"), ("P", ".png"), ("RGB", ".jpg"), ("L", ".tif"),
])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_load_image_gives_pillows_pixels(tmp_path, image_mode, suffix, mode):
  """The fast OpenCV path and Pillow's conversion agree, whatever the stored mode and format."""
  rgb = np.random.default_rng(0).integers(0, 256, (24, 20, 3), np.uint8)
  image = Image.fromarray(rgb)
  image = image.quantize(16) if image_mode == "P" else image.convert(image_mode)
  path = tmp_path / f"image{suffix}"
  image.save(path)
  with Image.open(path) as stored:
    expected = np.asarray(stored.convert(mode)).reshape(24, 20, -1)
  np.testing.assert_array_equal(images.load_image(path, mode, None), expected)


@pytest.mark.parametrize("image_mode, suffix, fragment", [
    ("RGBA", ".png", "has an alpha channel"), ("LA", ".png", "has an alpha channel"),
    ("I;16", ".png", "has 16-bit samples"), ("I;16", ".tif", "has 16-bit samples"),
    ("F", ".tif", "has 32-bit samples"),
])
def test_load_image_refuses_what_conversion_would_damage(tmp_path, image_mode, suffix, fragment):
  """Alpha would be dropped and 16-bit values clipped to 255: both are refused, naming the file."""
  path = tmp_path / f"image{suffix}"
  Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).convert(image_mode).save(path)
  with pytest.raises(DataError, match=fragment) as error:
    images.load_image(path, "L", None)
  assert str(path) in str(error.value)


def test_load_image_missing_file_names_it(tmp_path):
  path = tmp_path / "missing.png"
  with pytest.raises(DataError, match="not found") as error:
    images.load_image(path, "RGB", 64)
  assert str(path) in str(error.value)


def test_load_image_resizes_and_converts(tmp_path):
  path = tmp_path / "optical.png"
  rgb = np.zeros((128, 128, 3), np.uint8)
  rgb[:, 64:] = (200, 100, 50)
  _write_image(path, rgb)
  resized = images.load_image(path, "RGB", 64)
  assert resized.shape == (64, 64, 3) and resized.dtype == np.uint8
  np.testing.assert_array_equal(resized[:, :31], 0)
  np.testing.assert_array_equal(resized[:, 33:], np.broadcast_to((200, 100, 50), (64, 31, 3)))
  np.testing.assert_array_equal(images.load_image(path, "RGB", 128), rgb)
  grey = images.load_image(path, "L", None)
  assert grey.shape == (128, 128, 1) and grey.dtype == np.uint8


@requires_sen12
def test_load_pair_replicates_sar_band():
  pair = pairs_lib.find_pairs(SEN12_ROOT)[0]
  single = load_pair(SEN12_ROOT, pair, None, in_channels=1)
  assert single["sar"].shape == (256, 256, 1) and single["optical"].shape == (256, 256, 3)
  assert single["sar"].dtype == single["optical"].dtype == np.uint8
  assert single["sar"].std() > 1 and single["optical"].std() > 1
  triple = load_pair(SEN12_ROOT, pair, 64, in_channels=3)
  assert triple["sar"].shape == (64, 64, 3) and triple["optical"].shape == (64, 64, 3)
  np.testing.assert_array_equal(triple["sar"], np.repeat(triple["sar"][..., :1], 3, axis=-1))
  np.testing.assert_array_equal(
      triple["sar"][..., :1], load_pair(SEN12_ROOT, pair, 64, in_channels=1)["sar"])


# Pipelines.


@requires_sen12
def test_train_iterator_on_real_sample():
  pairs = pairs_lib.find_pairs(SEN12_ROOT)
  iterator = pipeline.train_iterator(
      sources.FolderSource(SEN12_ROOT, pairs), image_size=32, in_channels=1, global_batch_size=8, seed=0)
  batch = next(iterator)
  assert set(batch) == {"sar", "optical"}
  assert batch["sar"].shape == (8, 32, 32, 1) and batch["sar"].dtype == np.uint8
  assert batch["optical"].shape == (8, 32, 32, 3) and batch["optical"].dtype == np.uint8


def _train_batches(root, num_batches, **kwargs):
  kwargs = {"image_size": 32, "in_channels": 3, "global_batch_size": 4, "seed": 0} | kwargs
  iterator = pipeline.train_iterator(sources.FolderSource(root, pairs_lib.find_pairs(root)), **kwargs)
  return [next(iterator) for _ in range(num_batches)]


def test_train_iterator_reshuffles_each_epoch(flat_root):
  batches = _train_batches(flat_root, num_batches=6)
  assert batches[0]["sar"].shape == (4, 32, 32, 3)
  assert batches[0]["optical"].shape == (4, 32, 32, 3)
  ids = [i for batch in batches for i in _example_ids(batch)]
  assert sorted(ids[:12]) == sorted(ids[12:]) == list(range(12))
  assert ids[:12] != ids[12:]


def test_train_iterator_is_deterministic(flat_root):
  ids = [_example_ids(batch) for batch in _train_batches(flat_root, 3, seed=7)]
  assert ids == [_example_ids(batch) for batch in _train_batches(flat_root, 3, seed=7)]
  assert ids != [_example_ids(batch) for batch in _train_batches(flat_root, 3, seed=8)]


def test_process_slices_form_the_global_batch(flat_root):
  whole = _train_batches(flat_root, 5, global_batch_size=4)
  parts = [_train_batches(flat_root, 5, global_batch_size=4, process_index=index,
                          process_count=2) for index in range(2)]
  for step in range(5):
    assert parts[0][step]["sar"].shape[0] == parts[1][step]["sar"].shape[0] == 2
    combined = _example_ids(parts[0][step]) + _example_ids(parts[1][step])
    assert combined == _example_ids(whole[step])


def test_train_iterator_rejects_uneven_batch(flat_root):
  with pytest.raises(DataError, match="global batch size 5"):
    _train_batches(flat_root, 1, global_batch_size=5, process_count=2)


def test_train_iterator_state_resumes(flat_root):
  source = sources.FolderSource(flat_root, pairs_lib.find_pairs(flat_root))
  kwargs = {"image_size": 32, "in_channels": 1, "global_batch_size": 4, "seed": 5}
  iterator = pipeline.train_iterator(source, **kwargs)
  for _ in range(4):
    next(iterator)
  state = iterator.get_state()
  expected = next(iterator)
  resumed = pipeline.train_iterator(source, **kwargs)
  resumed.set_state(state)
  actual = next(resumed)
  for key in expected:
    np.testing.assert_array_equal(actual[key], expected[key])


def test_eval_batches_pads_last_batch(flat_root):
  pairs = pairs_lib.find_pairs(flat_root)[:10]
  batches = list(pipeline.eval_batches(
      sources.FolderSource(flat_root, pairs), image_size=32, in_channels=1, batch_size=4))
  assert len(batches) == 3
  for batch in batches:
    assert batch["sar"].shape == (4, 32, 32, 1) and batch["optical"].shape == (4, 32, 32, 3)
    assert batch["valid"].dtype == bool and batch["valid"].shape == (4,)
  index = np.concatenate([batch["index"] for batch in batches])
  valid = np.concatenate([batch["valid"] for batch in batches])
  np.testing.assert_array_equal(index, list(range(10)) + [9, 9])
  np.testing.assert_array_equal(valid, [True] * 10 + [False] * 2)
  expected_ids = [int(pathlib.Path(pair.s1).stem.rsplit("_p", 1)[1]) for pair in pairs]
  ids = [i for batch in batches for i in _example_ids(batch)]
  assert ids == expected_ids + expected_ids[-1:] * 2
