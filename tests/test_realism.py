"""Realism measures and transfer diagnostics: their definitions on tiny arrays, and eval's JSON and table."""

import csv
import json
import pathlib

import numpy as np
import pytest
from conftest import make_workdir, tiny_config
from PIL import Image

from sar2optical.data import resolve
from sar2optical.evaluation import workflow
from sar2optical.metrics import realism

RNG = np.random.default_rng(0)


def random_images(count: int = 3, size: int = 5) -> np.ndarray:
  return RNG.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def of(*batches: np.ndarray) -> realism.ImageSet:
  images = realism.ImageSet()
  for batch in batches:
    images.add(batch)
  return images


def test_gradient_sum_is_every_neighbour_difference_squared_in_unit_range():
  image = np.array([[0, 51, 102], [255, 0, 0]], np.uint8)[None, :, :, None]  # one 2×3 grey channel
  across = (51 - 0) ** 2 + (102 - 51) ** 2 + (0 - 255) ** 2 + (0 - 0) ** 2
  down = (255 - 0) ** 2 + (0 - 51) ** 2 + (0 - 102) ** 2
  assert realism.gradient_sum(image) == pytest.approx((across + down) / 255**2)
  assert of(image).gradient_sum / of(image).values == pytest.approx((across + down) / 255**2 / 6)


def test_identical_sets_have_ratio_one_and_distance_zero():
  images = random_images()
  measures = of(images[:2], images[2:]).measures(of(images))  # batching does not matter
  assert measures == {"high_frequency_ratio": pytest.approx(1.0), "colour_distance": 0.0}


def test_constant_images_have_ratio_zero_and_are_counted_without_drawing_them():
  colours = np.array([[10, 20, 30], [200, 100, 0]], np.uint8)
  drawn, counted = of(np.broadcast_to(colours[:, None, None, :], (2, 5, 5, 3))), realism.ImageSet()
  counted.add_constant(colours, 5, 5)
  np.testing.assert_array_equal(counted.histograms, drawn.histograms)
  assert counted.values == drawn.values and drawn.gradient_sum == 0
  assert counted.measures(of(random_images()))["high_frequency_ratio"] == 0


def test_colour_distance_is_the_wasserstein_1_distance_in_unit_range():
  images = RNG.integers(0, 200, (2, 4, 4, 3), dtype=np.uint8)
  assert of(images + 5).measures(of(images))["colour_distance"] == pytest.approx(5 / 255)  # every value moved 5 up
  first, second = np.zeros(256), np.zeros(256)
  first[10], second[[10, 30]] = 4, 2  # half the mass moved by 20 bins
  assert realism.wasserstein_1(first, second) == pytest.approx(0.5 * 20 / 255)
  histograms = np.stack([first, second, second])
  assert realism.colour_distance(histograms, np.stack([second, second, second])) == pytest.approx(10 / 255 / 3)


def hand_transfer(predicted: np.ndarray, target: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float]:
  p, t = predicted.reshape(-1, 3) / 255 - m, target.reshape(-1, 3) / 255 - m
  correlation = (p * t).sum(0) / np.sqrt((p * p).sum(0) * (t * t).sum(0))
  y = target.reshape(-1, 3) / 255
  return correlation, 1 - ((predicted.reshape(-1, 3) / 255 - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()


def test_transfer_against_numpy_and_at_its_ends():
  m = np.array([100, 120, 140]) / 255
  predicted, target = random_images(), random_images()
  transfer = realism.Transfer(m)
  transfer.add(predicted[:1], target[:1])
  transfer.add(predicted[1:], target[1:])
  correlation, explained = hand_transfer(predicted, target, m)
  np.testing.assert_allclose(transfer.correlation(), correlation, rtol=1e-12)
  assert transfer.variance_explained() == pytest.approx(explained, rel=1e-12)
  perfect = realism.Transfer(m)
  perfect.add(target, target)
  assert perfect.to_json() == {"correlation": {c: pytest.approx(1.0) for c in ("r", "g", "b", "mean")},
                               "variance_explained": pytest.approx(1.0)}
  constant = realism.Transfer(m)
  constant.add(np.broadcast_to(np.array([100, 120, 140], np.uint8), target.shape), target)
  record = constant.to_json()
  assert record["correlation"] == {"r": None, "g": None, "b": None, "mean": None} and record["variance_explained"] <= 0


@pytest.fixture(scope="module")
def workdir(demo_root, tmp_path_factory) -> pathlib.Path:
  """A checkpoint of the tiny model with spread networks (no training), and the demo set's split recorded."""
  workdir = make_workdir(tmp_path_factory.mktemp("run"), **{"data.root": str(demo_root)})
  config = tiny_config(demo_root)
  resolve.resolve(config.data, workdir, seed=config.seed, record=True)
  return workdir


def test_eval_reports_realism_transfer_and_the_diagnostic_floors(workdir, tmp_path):
  (result,) = workflow.evaluate(workdir, split="all", output_dir=str(tmp_path), save_images=True)
  step = tmp_path / f"step_{result['step']}"
  assert json.loads((step / "metrics.json").read_text()) == result
  floors = result["floors"]
  assert set(floors) == {"mean_colour", "other_target", "scene_colour", "image_colour"}
  assert "diagnostic" in floors["scene_colour"]["description"] and "diagnostic" in floors["image_colour"]["description"]
  # each target's own mean colour is the constant closest to it; the scene's is the closest to all
  assert floors["image_colour"]["overall"]["psnr"]["mean"] >= floors["scene_colour"]["overall"]["psnr"]["mean"]
  assert floors["scene_colour"]["overall"]["rmse"]["mean"] <= floors["mean_colour"]["overall"]["rmse"]["mean"] + 1e-6
  assert set(result["realism"]) == {"model", *floors}
  for constant in ("mean_colour", "scene_colour", "image_colour"):
    assert result["realism"][constant]["high_frequency_ratio"] == 0
  assert result["realism"]["other_target"] == {"high_frequency_ratio": pytest.approx(1.0), "colour_distance": 0.0}
  # the model's numbers, again from the saved PNGs and the targets they were scored against
  with open(step / "per_image.csv", newline="") as file:
    names = [row["s1_path"] for row in csv.DictReader(file)]  # scoring order, as targets.txt
  images = step / "images"
  generated = np.stack([np.asarray(Image.open(images / pathlib.PurePosixPath(name).with_suffix(".png")))
                        for name in names])
  targets = (step / "targets.txt").read_text().splitlines()
  target = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in targets])
  assert len(names) == len(targets) == result["n"] == 24
  assert floors["mean_colour"]["source"].startswith("training split")
  np.testing.assert_allclose(floors["scene_colour"]["mean_colour_rgb"], target.mean(axis=(0, 1, 2)) / 255, atol=1e-9)
  assert result["realism"]["model"] == {
      "high_frequency_ratio": pytest.approx(realism.gradient_sum(generated) / realism.gradient_sum(target)),
      "colour_distance": pytest.approx(realism.colour_distance(realism.channel_histograms(generated),
                                                               realism.channel_histograms(target)))}
  correlation, explained = hand_transfer(generated, target, np.asarray(floors["mean_colour"]["mean_colour_rgb"]))
  by_channel = {c: pytest.approx(v) for c, v in zip("rgb", correlation, strict=True)}
  assert result["transfer"] == {"correlation": {**by_channel, "mean": pytest.approx(correlation.mean())},
                                "variance_explained": pytest.approx(explained)}
  table = workflow.format_table(result)
  assert "floor: image_colour*" in table and "HF ratio" in table and "variance explained" in table
  assert "scene_colour floor" not in table and "image_colour floor" not in table  # no remark for the diagnostics


def test_no_remark_for_a_model_under_the_diagnostic_floors():
  def entry(psnr: float, ssim: float) -> dict:
    return {"n": 4, "psnr": {"mean": psnr, "std": 0.0}, "ssim": {"mean": ssim, "std": 0.0}}

  result = {"overall": entry(15.0, 0.3), "floors": {"mean_colour": {"n": 4, "overall": entry(14.0, 0.2)},
                                                    "scene_colour": {"n": 4, "overall": entry(16.0, 0.4)},
                                                    "image_colour": {"n": 4, "overall": entry(20.0, 0.5)}}}
  assert workflow.under_floors(result) == []

