"""A model is used at the ground pixel it learned (config.data.fit): training records it, predict, the API, export
and eval apply it, and predict.py's outputs score what eval.py reports."""

import dataclasses
import json
import pathlib

import cv2
import numpy as np
import pytest
from conftest import SEN12_ROOT, spread_generator, tiny_config
from PIL import Image

import sar2optical
from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import make_metadata, pixel_scale_of
from sar2optical.configs import pix2pix, quickstart
from sar2optical.core.errors import DataError
from sar2optical.data import augment, images, pipeline, synthetic
from sar2optical.data.pairs import Pair, find_pairs
from sar2optical.data.sources import FolderSource
from sar2optical.evaluation import workflow
from sar2optical.inference import artifact, tile_engine
from sar2optical.interop import stablehlo
from sar2optical.metrics import distortion
from sar2optical.model.pixels import PixelSpec

_CROP = augment.Augmentation(crop=True)


@pytest.fixture(scope="module")
def root64(tmp_path_factory) -> pathlib.Path:
  """A synthetic SEN1-2-like set of 64² pairs (2 a class)."""
  root = tmp_path_factory.mktemp("demo64")
  synthetic.generate(root, pairs_per_class=2, size=64, seed=1)
  return root


def _pair(side: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"sar": rng.integers(0, 256, (side, side, 1), np.uint8), "optical": rng.integers(0, 256, (side, side, 3),
                                                                                         np.uint8)}


def test_crop_takes_a_window_at_the_stored_pixel():
  pair = _pair(48)
  fitted = augment.fit_pair(pair, 32, _CROP, np.random.default_rng(3))
  top, left = np.random.default_rng(3).integers(0, 17, size=2)
  for name in pair:
    np.testing.assert_array_equal(fitted[name], pair[name][top:top + 32, left:left + 32])
  jittered = augment.fit_pair(pair, 32, dataclasses.replace(_CROP, jitter=True), np.random.default_rng(3))
  assert jittered["sar"].shape == (32, 32, 1)  # a window of the pair resized to 286/256 of its own side (54²)


def test_crop_refuses_pairs_smaller_than_the_model(demo_root):
  with pytest.raises(DataError, match=r"config\.data\.fit=crop: a training pair is 16x16"):
    augment.fit_pair(_pair(16), 32, _CROP, np.random.default_rng(0))
  source = FolderSource(demo_root, find_pairs(demo_root))
  with pytest.raises(DataError, match=r"config\.data\.fit=crop: the training pairs .* are 32x32, smaller "
                     r"than config\.image_size=64"):
    pipeline.train_iterator(source, image_size=64, in_channels=1, global_batch_size=2, seed=0, augmentation=_CROP)


@pytest.mark.parametrize("crop, image_size, scale", [(False, 16, 2.0), (False, 32, 1.0), (True, 16, 1.0)])
def test_the_training_data_measure_the_pixel_scale(demo_root, crop, image_size, scale):
  source = FolderSource(demo_root, find_pairs(demo_root))
  iterator = pipeline.train_iterator(source, image_size=image_size, in_channels=1, global_batch_size=2, seed=0,
                                     augmentation=augment.Augmentation(crop=crop))
  try:
    assert iterator.pixel_scale == scale
    assert next(iterator)["sar"].shape == (2, image_size, image_size, 1)
  finally:
    iterator.close()


def test_resized_pairs_of_two_sizes_are_refused(demo_root, root64):
  """Resizing 32² and 64² pairs to one size would mix two ground pixels: one line naming data.fit."""
  pairs = [dataclasses.replace(p, s1=str(root / p.s1), s2=str(root / p.s2)) for root in (demo_root, root64)
           for p in find_pairs(root)]
  iterator = pipeline.train_iterator(FolderSource("/", pairs), image_size=32, in_channels=1,
                                     global_batch_size=len(pairs), seed=0)
  try:
    with pytest.raises(DataError, match=r"config\.data\.fit=resize: training pairs of 64x64 and 32x32"):
      next(iterator)
  finally:
    iterator.close()


def test_checkpoints_without_a_scale_read_as_scale_1():
  assert pixel_scale_of({"step": 1, "config": {}, "pixels": PixelSpec().to_dict()}) == 1.0
  assert pixel_scale_of(make_metadata(tiny_config("unused"), PixelSpec(), 1, 4.0)) == 4.0


@pytest.fixture(scope="module")
def scaled_generator():
  """A tiny eval-mode generator at 32² that learned a pixel twice the stored one (resize fit of 64² pairs)."""
  return dataclasses.replace(spread_generator(tiny_config("unused", **{"data.fit": "resize"})), pixel_scale=2.0)


def test_tiles_span_the_ground_the_model_learned(scaled_generator):
  """A 64² image at scale 2 is one tile: resized to 32², translated, its output resized back, as training saw it."""
  sar = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
  translated = tile_engine.translate_array(scaled_generator, sar)
  model_input = images.resize(sar[..., None], 32)[None]
  output = np.asarray(scaled_generator(model_input))[0]
  expected = scaled_generator.pixels.to_uint8(cv2.resize(output, (64, 64), interpolation=cv2.INTER_LINEAR))
  np.testing.assert_array_equal(translated, expected)
  assert tile_engine.translate_array(scaled_generator, sar[:50, :45]).shape == (50, 45, 3)
  scene = np.random.default_rng(1).integers(0, 256, (150, 100), np.uint8)
  assert tile_engine.translate_array(scaled_generator, scene).shape == (150, 100, 3)


def test_exported_artifacts_keep_the_scale(scaled_generator, tmp_path):
  exported = stablehlo.export_generator(scaled_generator, ("cpu",))
  path = tmp_path / "generator.jax"
  path.write_bytes(exported.serialize())
  sidecar = stablehlo.sidecar(scaled_generator, exported)
  assert sidecar["pixel_scale"] == 2.0
  pathlib.Path(f"{path}.json").write_text(json.dumps(sidecar))
  loaded = artifact.ExportedGenerator(path)
  assert loaded.pixel_scale == 2.0
  sar = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
  from_artifact = tile_engine.translate_array(loaded, sar).astype(int)
  assert np.abs(from_artifact - tile_engine.translate_array(scaled_generator, sar)).max() <= 1
  del sidecar["pixel_scale"]  # an artifact exported before the scale was recorded
  pathlib.Path(f"{path}.json").write_text(json.dumps(sidecar))
  assert artifact.ExportedGenerator(path).pixel_scale == 1.0


def test_a_resize_fit_run_records_its_scale_and_predicts_at_it(root64, tmp_path):
  """1 step on 64² pairs resized to 32²: the checkpoint says 2 input pixels a model pixel; the API tiles by it."""
  from sar2optical.training import loop  # pylint: disable=g-import-not-at-top (keeps collection light)
  workdir = tmp_path / "run"
  loop.train(tiny_config(root64, num_train_steps=1, eval_every_steps=0, **{"data.fit": "resize"}), workdir)
  checkpoints = manager.Checkpoints(workdir, create=False)
  try:
    assert checkpoints.metadata(1)["pixel_scale"] == 2.0
  finally:
    checkpoints.close()
  translator = sar2optical.load(workdir)
  assert translator.generator.pixel_scale == 2.0
  sar = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
  assert translator.translate(sar).shape == (64, 64, 3)


# predict.py's outputs score what eval.py reports, for the packaged configs.


def _predicted_psnr(workdir: pathlib.Path, root: pathlib.Path, pairs: list[Pair], output: pathlib.Path) -> float:
  """Mean PSNR of predict.py's PNGs (`sar2optical.load(...).translate_files`, predict.py's code) of `pairs`."""
  inputs = output / "in"
  for pair in pairs:
    (inputs / pair.s1).parent.mkdir(parents=True, exist_ok=True)
    (inputs / pair.s1).symlink_to(root / pair.s1)
  summary = sar2optical.load(workdir).translate_files(str(inputs), output / "out")
  assert summary.translated == len(pairs) and not summary.failed, summary.errors
  values = []
  for pair in pairs:
    generated = np.asarray(Image.open((output / "out" / pair.s1).with_suffix(".png")), np.float32) / 255.0
    target = images.load_image(root / pair.s2, "RGB", None).astype(np.float32) / 255.0
    values.append(float(distortion.image_metrics(generated[None], target[None])["psnr"][0]))
  return float(np.mean(values))


def _untrained_workdir(config, workdir: pathlib.Path) -> pathlib.Path:
  """A workdir with a step-0 checkpoint of `config` (spread networks) and the pixel scale training's pipeline
  measures on `config.data.root`."""
  from conftest import spread_state  # pylint: disable=g-import-not-at-top
  source = FolderSource(config.data.root, find_pairs(config.data.root))
  iterator = pipeline.train_iterator(source, image_size=config.image_size, in_channels=1, global_batch_size=2, seed=0,
                                     augmentation=augment.Augmentation.from_config(config.data))
  iterator.close()
  _, state = spread_state(config)
  checkpoints = manager.Checkpoints(workdir)
  checkpoints.save(0, state, None, make_metadata(config, PixelSpec(), 0, iterator.pixel_scale))
  checkpoints.wait()
  checkpoints.close()
  return workdir


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory) -> pathlib.Path:
  """Two 256² pairs of each class: of the real SEN1-2 sample, or demo pairs where it is absent."""
  root = tmp_path_factory.mktemp("pairs256")
  if not SEN12_ROOT.is_dir():
    synthetic.generate(root, pairs_per_class=2, size=256, seed=0)
    return root
  for label in sorted(path.name for path in SEN12_ROOT.iterdir() if (path / "s1").is_dir()):
    for s1 in sorted((SEN12_ROOT / label / "s1").iterdir())[:2]:
      for folder, name in (("s1", s1.name), ("s2", s1.name.replace("_s1_", "_s2_"))):
        (root / label / folder).mkdir(parents=True, exist_ok=True)
        (root / label / folder / name).symlink_to(SEN12_ROOT / label / folder / name)
  return root


@pytest.mark.parametrize("name, get_config", [("pix2pix", pix2pix.get_config), ("quickstart", quickstart.get_config)])
def test_predict_outputs_score_as_eval_reports(pairs_root, tmp_path, name, get_config):
  """The packaged configs as they are (256² resize fit, scale 1; 64² crop fit, scale 1), untrained."""
  config = get_config()
  config.data.root = str(pairs_root)
  workdir = _untrained_workdir(config, tmp_path / "run")
  assert sar2optical.load(workdir).generator.pixel_scale == 1.0
  reported = workflow.evaluate(workdir, split="all", grid_pairs=0)[0]["overall"]["psnr"]["mean"]
  pairs = find_pairs(pairs_root)
  predicted = _predicted_psnr(workdir, pairs_root, pairs, tmp_path)
  print(f"{name}: eval.py {reported:.4f} dB, predict.py's outputs {predicted:.4f} dB over {len(pairs)} pairs")
  assert abs(reported - predicted) < 0.05
