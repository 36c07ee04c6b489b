"""Tests of the `sen1_2` TFDS builder on the real sample: round trip, configs, and reading it to train."""

import pathlib

import numpy as np
import pytest
from array_record.python import array_record_module
from conftest import SEN12_ROOT, requires_sen12, tiny_config
from PIL import Image

from sar2optical.checkpoints import manager
from sar2optical.configs import quickstart
from sar2optical.core.errors import DataError
from sar2optical.data import build_tfds, pipeline, resolve, sources, splits
from sar2optical.data import pairs as pairs_lib
from sar2optical.evaluation import workflow
from sar2optical.training import loop

pytestmark = requires_sen12


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, dict]:
  """Both configs of sen1_2, built from the sample with a seeded scene split written to a file."""
  data_dir = tmp_path_factory.mktemp("tfds")
  split = splits.make_split(pairs_lib.find_pairs(SEN12_ROOT), seed=1)
  split_file = data_dir / "split.json"
  splits.write_split(split_file, split)
  for config in sources.TFDS_CONFIGS:
    build_tfds.build(str(SEN12_ROOT), data_dir=str(data_dir), config=config, split_file=str(split_file))
  return data_dir, split


def _pillow(path: pathlib.Path, mode: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert(mode))


@pytest.mark.parametrize("config", sources.TFDS_CONFIGS)
def test_round_trip_gives_the_pngs_pixels(built, config):
  data_dir, split = built
  pairs = {pair.s1: pair for pair in pairs_lib.find_pairs(SEN12_ROOT)}
  seen = []
  for name in splits.SPLIT_NAMES:
    source = sources.TfdsSource(name, data_dir=str(data_dir), config=config)
    assert source.split_file == split
    ids = []
    for index in range(len(source)):
      record = source[index]
      pair = pairs[record["patch_id"].decode()]
      assert record["label"].decode() == pair.label and record["scene"].decode() == pair.scene
      decoded = source.decode(record)
      assert decoded["sar"].dtype == decoded["optical"].dtype == np.uint8
      np.testing.assert_array_equal(decoded["sar"][..., 0], _pillow(SEN12_ROOT / pair.s1, "L"))
      np.testing.assert_array_equal(decoded["optical"], _pillow(SEN12_ROOT / pair.s2, "RGB"))
      ids.append(pair.s1)
    assert sorted(ids) == split["data"][name]
    seen += ids
  assert sorted(seen) == sorted(pairs)


@pytest.mark.parametrize("config", sources.TFDS_CONFIGS)
def test_shards_are_stored_uncompressed(built, config):
  """Images hardly compress, and decoding zstd took most of the time of a read."""
  shards = list((built[0] / "sen1_2" / config).glob("*/*.array_record-*"))
  assert shards
  for shard in shards:
    reader = array_record_module.ArrayRecordReader(str(shard))
    assert "uncompressed" in reader.writer_options_string().split(",")
    reader.close()


def test_png_config_stores_the_files_bytes(built):
  source = sources.TfdsSource("val", data_dir=str(built[0]), config="png")
  record = source[0]
  pair_s1 = record["patch_id"].decode()
  assert record["sar"] == (SEN12_ROOT / pair_s1).read_bytes()
  assert record["optical"] == (SEN12_ROOT / pair_s1.replace("/s1/", "/s2/").replace("_s1_", "_s2_")).read_bytes()


def test_pipeline_reads_the_build(built):
  source = sources.TfdsSource("train", data_dir=str(built[0]))
  iterator = pipeline.train_iterator(source, image_size=64, in_channels=3, global_batch_size=4, seed=0)
  batch = next(iterator)
  iterator.close()
  assert batch["sar"].shape == (4, 64, 64, 3) and batch["optical"].shape == (4, 64, 64, 3)
  assert batch["sar"].dtype == np.uint8 and batch["sar"].std() > 1


def test_trainer_reads_tfds_and_records_its_split(built, tmp_path):
  data_dir, split = built
  config = quickstart.get_config()
  config.data.source, config.data.tfds_data_dir = "tfds", str(data_dir)
  run_data = resolve.resolve(config.data, tmp_path, seed=config.seed, record=True)
  train, samples, returned_split = run_data.source("train"), run_data.source("val"), run_data.split
  assert splits.read_split(tmp_path / "split.json") == returned_split == split
  assert len(train) == len(split["data"]["train"]) and len(samples) == len(split["data"]["val"])


def test_missing_build_says_how_to_build(tmp_path):
  with pytest.raises(DataError, match=r"no sen1_2/png build in .*python -m sar2optical\.data\.build_tfds"):
    sources.TfdsSource("train", data_dir=str(tmp_path), config="png")


def test_eval_on_a_tfds_split_equals_the_folder(built, tmp_path):
  """eval on the build's val split scores the same pixels as on the folder: identical metrics and names."""
  data_dir, split = built
  config = tiny_config(SEN12_ROOT, num_train_steps=1, log_every_steps=1, sample_every_steps=1, eval_every_steps=0)
  config.data.source, config.data.tfds_data_dir = "tfds", str(data_dir)
  loop.train(config, tmp_path / "run")
  (from_tfds,) = workflow.evaluate(tmp_path / "run", split="val", data_source="tfds", tfds_data_dir=str(data_dir),
                                     output_dir=str(tmp_path / "tfds"))
  (from_folder,) = workflow.evaluate(tmp_path / "run", split="val", output_dir=str(tmp_path / "folder"))
  assert from_tfds["n"] == from_folder["n"] == len(split["data"]["val"])
  assert from_tfds["per_class"] == from_folder["per_class"]
  for metric, value in from_folder["floors"]["mean_colour"]["overall"].items():
    assert from_tfds["floors"]["mean_colour"]["overall"][metric] == pytest.approx(value)
  rows = [sorted((tmp_path / source / "step_1" / "per_image.csv").read_text().splitlines()) for source in
          ("tfds", "folder")]
  assert rows[0] == rows[1]  # the build may order the records otherwise; names, classes and scores agree


def test_a_tfds_run_validates_on_the_builds_val_split_and_keeps_its_best(built, tmp_path):
  """Without data.root, a TFDS run scores the build's val split during training; eval.py --steps=best then works."""
  data_dir, split = built
  config = tiny_config("", num_train_steps=2, log_every_steps=1, sample_every_steps=2, eval_every_steps=1,
                       keep_checkpoints=1, **{"data.source": "tfds", "data.tfds_data_dir": str(data_dir)})
  loop.train(config, tmp_path / "run")
  logged = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "val_psnr" in line]
  assert len(logged) == 2
  checkpoints = manager.Checkpoints(tmp_path / "run", create=False)
  best = checkpoints.resolve_step("best")
  checkpoints.close()
  (result,) = workflow.evaluate(tmp_path / "run", split="val", steps="best", data_source="tfds",
                                  tfds_data_dir=str(data_dir), output_dir=str(tmp_path / "eval"))
  assert result["step"] == best and result["n"] == len(split["data"]["val"])
