"""Tests of the training pipeline: augmentation, determinism, process slices, resume, bad records."""

import json
import pathlib

import numpy as np
import pytest
from absl import flags
from PIL import Image

from sar2optical.core.errors import DataError
from sar2optical.data import augment, images, pipeline, sources
from sar2optical.data import pairs as pairs_lib

_SIZE = 32
_PAIRS = 12


def _write_pairs(root: pathlib.Path, num_pairs: int, size: int = _SIZE) -> None:
  """Random pairs whose optical image is the SAR image in all three channels."""
  rng = np.random.default_rng(0)
  for i in range(num_pairs):
    sar = rng.integers(0, 256, (size, size), np.uint8)
    name = f"ROIs1970_fall_s1_{i // 3}_p{i}.png"
    for folder, image in (("s1", sar), ("s2", np.stack([sar] * 3, axis=-1))):
      (root / folder).mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(root / folder / name.replace("_s1_", f"_{folder}_"))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> sources.FolderSource:
  root = tmp_path_factory.mktemp("pairs")
  _write_pairs(root, _PAIRS)
  return sources.FolderSource(root, pairs_lib.find_pairs(root))


@pytest.fixture(scope="module", autouse=True)
def absl_flags_parsed():
  """grain's worker processes read absl flags; pytest parses none."""
  flags.FLAGS.mark_as_parsed()


_PAPER = augment.Augmentation(jitter=True, hflip=True)
_EVERYTHING = augment.Augmentation(jitter=True, hflip=True, vflip=True, rot90=True)


def _batches(source, num_batches, **kwargs):
  kwargs = {"image_size": _SIZE, "in_channels": 1, "global_batch_size": 4, "seed": 0} | kwargs
  iterator = pipeline.train_iterator(source, **kwargs)
  batches = [next(iterator) for _ in range(num_batches)]
  iterator.close()
  return batches


def _assert_batches_equal(actual, expected):
  assert len(actual) == len(expected)
  for got, want in zip(actual, expected):
    assert got.keys() == want.keys()
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


# Augmentation.


def test_jitter_size_scales_the_papers_286():
  assert augment.jitter_size(256) == 286
  assert augment.jitter_size(64) == 72
  assert augment.jitter_size(32) == 36


def test_both_images_get_the_same_crop_flip_and_rotation():
  rng = np.random.default_rng(1)
  sar = rng.integers(0, 256, (_SIZE, _SIZE, 1), np.uint8)
  pair = {"sar": sar, "optical": np.repeat(sar, 3, axis=-1)}
  outputs = set()
  for seed in range(16):
    fitted = augment.fit_pair(pair, _SIZE, _EVERYTHING, np.random.default_rng(seed))
    assert fitted["sar"].shape == (_SIZE, _SIZE, 1) and fitted["optical"].shape == (_SIZE, _SIZE, 3)
    for channel in range(3):
      np.testing.assert_array_equal(fitted["optical"][..., channel], fitted["sar"][..., 0])
    outputs.add(fitted["sar"].tobytes())
  assert len(outputs) > 8  # The crops, flips and turns do vary.


def test_jitter_is_a_window_of_the_resized_image_and_hflip_mirrors_it():
  sar = np.random.default_rng(2).integers(0, 256, (_SIZE, _SIZE, 1), np.uint8)
  resized = augment.jitter_resize(sar, augment.jitter_size(_SIZE))
  windows = {resized[top:top + _SIZE, left:left + _SIZE].tobytes(): (top, left)
             for top in range(5) for left in range(5)}
  mirrored = set()
  for seed in range(12):
    fitted = augment.fit_pair({"sar": sar}, _SIZE, _PAPER, np.random.default_rng(seed))["sar"]
    as_is = np.ascontiguousarray(fitted).tobytes()
    unmirrored = np.ascontiguousarray(fitted[:, ::-1]).tobytes()
    assert as_is in windows or unmirrored in windows
    mirrored.add(as_is not in windows)
  assert mirrored == {True, False}


def test_without_augmentation_pairs_are_only_resized():
  sar = np.random.default_rng(3).integers(0, 256, (64, 64, 1), np.uint8)
  fitted = augment.fit_pair({"sar": sar}, _SIZE, augment.Augmentation(), np.random.default_rng(0))
  np.testing.assert_array_equal(fitted["sar"], images.resize(sar, _SIZE))
  assert augment.fit_pair({"sar": sar}, 64, augment.Augmentation(), np.random.default_rng(0))["sar"] is sar


# Determinism, processes, workers and resume.


def test_augmented_batches_are_deterministic_for_a_seed(source):
  first = _batches(source, 4, augmentation=_EVERYTHING, in_channels=3)
  assert first[0]["sar"].shape == (4, _SIZE, _SIZE, 3)
  np.testing.assert_array_equal(first[0]["sar"][..., 0], first[0]["sar"][..., 2])
  _assert_batches_equal(_batches(source, 4, augmentation=_EVERYTHING, in_channels=3), first)
  other_seed = _batches(source, 4, augmentation=_EVERYTHING, in_channels=3, seed=1)
  assert not np.array_equal(other_seed[0]["sar"], first[0]["sar"])


def test_process_slices_join_into_the_global_batch_in_order(source):
  whole = _batches(source, 4, augmentation=_PAPER, global_batch_size=6)
  parts = [_batches(source, 4, augmentation=_PAPER, global_batch_size=6, process_index=index, process_count=3)
           for index in range(3)]
  joined = [{key: np.concatenate([part[step][key] for part in parts]) for key in ("sar", "optical")}
            for step in range(4)]
  _assert_batches_equal(joined, whole)


def test_restart_at_a_step_on_another_process_count(source):
  """After a restore onto another process count, the data go on as the uninterrupted run's."""
  whole = _batches(source, 5, augmentation=_PAPER)
  parts = []
  for index in range(2):
    iterator = pipeline.train_iterator(source, image_size=_SIZE, in_channels=1, global_batch_size=4, seed=0,
                                       augmentation=_PAPER, process_index=index, process_count=2)
    iterator.restart_at(3)
    parts.append([next(iterator) for _ in range(2)])
    iterator.close()
  joined = [{key: np.concatenate([part[step][key] for part in parts]) for key in ("sar", "optical")}
            for step in range(2)]
  _assert_batches_equal(joined, whole[3:])


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_iterator_gives_the_uninterrupted_batches(source, workers):
  """Interrupted after 4 batches (past the first epoch of 3), with or without worker processes."""
  uninterrupted = _batches(source, 6, augmentation=_PAPER, seed=3)
  kwargs = {"image_size": _SIZE, "in_channels": 1, "global_batch_size": 4, "seed": 3, "augmentation": _PAPER,
            "workers": workers}
  iterator = pipeline.train_iterator(source, **kwargs)
  _assert_batches_equal([next(iterator) for _ in range(4)], uninterrupted[:4])
  state = json.loads(json.dumps(iterator.get_state()))  # As grain.checkpoint stores it.
  iterator.close()
  resumed = pipeline.train_iterator(source, **kwargs)
  resumed.set_state(state)
  _assert_batches_equal([next(resumed) for _ in range(2)], uninterrupted[4:])
  resumed.close()


def test_state_after_restart_keeps_its_position(source):
  kwargs = {"image_size": _SIZE, "in_channels": 1, "global_batch_size": 4, "seed": 0}
  iterator = pipeline.train_iterator(source, **kwargs)
  iterator.restart_at(7)
  next(iterator)
  state = iterator.get_state()
  resumed = pipeline.train_iterator(source, **kwargs)
  resumed.set_state(state)
  _assert_batches_equal([next(resumed)], _batches(source, 9)[8:])


def test_first_pairs_are_fitted_without_augmentation(source):
  samples = pipeline.first_pairs(source, 3, image_size=16, in_channels=3)
  assert samples["sar"].shape == (3, 16, 16, 3) and samples["optical"].shape == (3, 16, 16, 3)
  first = source.decode(source[0])
  np.testing.assert_array_equal(samples["optical"][0], images.resize(first["optical"], 16))


# Bad records.


@pytest.fixture
def source_with_a_bad_record(tmp_path: pathlib.Path) -> tuple[sources.FolderSource, pathlib.Path]:
  _write_pairs(tmp_path, 8)
  bad = tmp_path / "s2" / "ROIs1970_fall_s2_1_p5.png"
  bad.write_bytes(bad.read_bytes()[:100])
  return sources.FolderSource(tmp_path, pairs_lib.find_pairs(tmp_path)), bad


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_record_stops_training_naming_the_file(source_with_a_bad_record, workers):
  source, bad = source_with_a_bad_record
  with pytest.raises(DataError, match="cannot decode image") as error:
    _batches(source, 3, workers=workers)
  assert str(bad) in str(error.value)


def test_skip_bad_skips_and_counts_bad_records(source_with_a_bad_record):
  source, bad = source_with_a_bad_record
  iterator = pipeline.train_iterator(source, image_size=_SIZE, in_channels=1, global_batch_size=4, seed=0,
                                     skip_bad=True)
  batches = [next(iterator) for _ in range(7)]  # 28 examples of 3.5 epochs of 7 good pairs.
  assert all(set(batch) == {"sar", "optical"} and len(batch["sar"]) == 4 for batch in batches)
  assert iterator.skipped in (3, 4)  # Once per epoch read so far (grain prefetches ahead).
  good = {np.ascontiguousarray(source.decode(source[i])["sar"]).tobytes()
          for i in range(len(source)) if source[i].s2 != bad.relative_to(source.root).as_posix()}
  seen = [sar.tobytes() for batch in batches for sar in batch["sar"]]
  assert set(seen) == good
  state = iterator.get_state()
  expected = next(iterator)
  iterator.close()
  resumed = pipeline.train_iterator(source, image_size=_SIZE, in_channels=1, global_batch_size=4, seed=0,
                                    skip_bad=True)
  resumed.set_state(state)
  _assert_batches_equal([next(resumed)], [expected])
  resumed.close()


# Config.


def test_paper_variant_turns_on_the_papers_augmentation():
  from sar2optical.configs import pix2pix  # pylint: disable=g-import-not-at-top
  assert augment.Augmentation.from_config(pix2pix.get_config().data) == augment.Augmentation()
  config = pix2pix.get_config("paper")
  config.data.rot90 = True
  assert augment.Augmentation.from_config(config.data) == augment.Augmentation(jitter=True, hflip=True, rot90=True)


@pytest.mark.parametrize("name, value", [
    ("augment", "jitter"), ("source", "s3"), ("tfds_config", "jpeg"), ("workers", -1),
])
def test_bad_data_fields_are_named(name, value):
  from sar2optical.configs import fields, quickstart  # pylint: disable=g-import-not-at-top
  from sar2optical.core.errors import ConfigError  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config()
  config.data[name] = value
  with pytest.raises(ConfigError, match=f"config.data.{name}"):
    fields.validate(config)


def test_tfds_source_needs_no_data_root():
  from sar2optical.configs import fields, quickstart  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config()
  config.data.root, config.data.source = "", "tfds"
  fields.validate(config)
