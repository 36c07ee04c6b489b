"""Evaluation: metric definitions against scikit-image, floors, aggregation, outputs, modes, errors."""

import csv
import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
from conftest import SEN12_ROOT, requires_sen12, tiny_config
from PIL import Image

from sar2optical.core.errors import DataError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import sources
from sar2optical.data.images import load_image
from sar2optical.evaluation import workflow
from sar2optical.inference.restore import load_generator
from sar2optical.metrics import distortion, scoring
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import loop
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib


@requires_sen12
def test_metrics_agree_with_scikit_image_on_real_pairs():
  skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (test dependency) is not installed")
  paths = sorted(SEN12_ROOT.glob("*/s2/*.png"))[::9]
  targets = np.stack([load_image(p, "RGB", None) for p in paths]).astype(np.float64) / 255
  rng = np.random.default_rng(0)
  predictions = np.clip(np.roll(targets, 1, axis=0) * 0.5 + targets * 0.5 + rng.normal(0, 0.05, targets.shape), 0, 1)
  ours = jax.device_get(distortion.image_metrics(np.float32(predictions), np.float32(targets)))
  for i in range(len(paths)):
    ssim = skimage_metrics.structural_similarity(predictions[i], targets[i], gaussian_weights=True, sigma=1.5,
                                                 use_sample_covariance=False, data_range=1, channel_axis=-1)
    psnr = skimage_metrics.peak_signal_noise_ratio(targets[i], predictions[i], data_range=1)
    assert abs(ours["ssim"][i] - ssim) < 1e-4, (paths[i], ours["ssim"][i], ssim)
    assert abs(ours["psnr"][i] - psnr) < 1e-4, (paths[i], ours["psnr"][i], psnr)
  assert len(paths) >= 10


def test_derangement_has_no_fixed_point_and_is_seeded():
  for n in (2, 3, 10, 97):
    order = distortion.derangement(n, seed=1)
    assert sorted(order) == list(range(n)) and np.all(order != np.arange(n))
  np.testing.assert_array_equal(distortion.derangement(50, 3), distortion.derangement(50, 3))
  assert not np.array_equal(distortion.derangement(50, 3), distortion.derangement(50, 4))


def test_aggregate_per_class():
  values = {"psnr": np.array([10.0, 20.0, 30.0, 40.0])}
  result = distortion.aggregate(values, ["a", "b", "a", "b"])
  assert result["n"] == 4 and result["overall"]["psnr"] == {"mean": 25.0, "std": pytest.approx(np.std([10, 20, 30, 40]))}
  assert result["per_class"]["a"] == {"n": 2, "psnr": {"mean": 20.0, "std": 10.0}}
  assert result["per_class"]["b"] == {"n": 2, "psnr": {"mean": 30.0, "std": 10.0}}


def tiny_model():
  return recipe_lib.make_recipe(tiny_config("unused"), PixelSpec())


def test_floors_on_a_hand_made_case(tmp_path):
  """Two constant targets, 0.2 and 0.6 grey: mean colour 0.4 is 0.2 off each; the other target 0.4 off."""
  for name, value in (("a", 51), ("b", 153)):  # 51/255 = 0.2, 153/255 = 0.6
    for folder in ("s1", "s2"):
      (tmp_path / folder).mkdir(exist_ok=True)
      Image.new("L" if folder == "s1" else "RGB", (32, 32), (value,) if folder == "s1" else (value,) * 3).save(
          tmp_path / folder / f"x_{folder}_{name}.png")
  pairs = pairs_lib.find_pairs(tmp_path)
  model = tiny_model()
  state = state_lib.init_state(model, jax.random.PRNGKey(0), 32, 1)
  evaluator = scoring.Evaluator(model.generator, model.pixels, image_size=32, in_channels=1, batch_size=2)
  source = sources.FolderSource(tmp_path, pairs)
  colour = evaluator.mean_colour(source)
  np.testing.assert_allclose(colour, [0.4] * 3, atol=1e-9)
  scores = evaluator.score(state.g_params, state.g_stats, source, mean_colour=colour)
  mean_floor, other_floor = scores.floors["mean_colour"], scores.floors["other_target"]
  np.testing.assert_allclose(mean_floor["mae"], [0.2, 0.2], atol=1e-6)
  np.testing.assert_allclose(mean_floor["psnr"], 10 * np.log10(1 / 0.04), atol=1e-4)
  np.testing.assert_allclose(other_floor["rmse"], [0.4, 0.4], atol=1e-6)
  c1 = 0.01**2  # constant images: SSIM is the luminance term alone; float32 variances of a constant cost ~1e-4
  np.testing.assert_allclose(mean_floor["ssim"], [(2 * 0.4 * 0.2 + c1) / (0.4**2 + 0.2**2 + c1),
                                                  (2 * 0.4 * 0.6 + c1) / (0.4**2 + 0.6**2 + c1)], atol=3e-4)
  assert scores.model["psnr"].shape == (2,) and np.all(np.isfinite(scores.model["psnr"]))


@pytest.fixture(scope="module")
def workdir(tiny_workdir) -> pathlib.Path:
  return tiny_workdir


def test_outputs_follow_the_schema(workdir, tmp_path):
  results = workflow.evaluate(workdir, split="all", steps="all", batch_size=4, output_dir=str(tmp_path),
                                grid_pairs=3)
  assert [r["step"] for r in results] == [1, 2]
  result = json.loads((tmp_path / "step_2" / "metrics.json").read_text())
  assert {"step", "mode", "split", "n", "overall", "per_class", "floors", "config"} <= set(result)
  assert result["n"] == 24 and set(result["per_class"]) == {"agri", "barrenland", "grassland", "urban"}
  for block in [result["overall"], *(c for c in result["per_class"].values()),
                *(f["overall"] for f in result["floors"].values())]:
    assert set(block) >= set(distortion.METRICS) and all(set(block[m]) == {"mean", "std"} for m in distortion.METRICS)
  assert set(result["floors"]) == {"mean_colour", "other_target", "scene_colour", "image_colour"}
  assert result["floors"]["mean_colour"]["source"].startswith("training split")
  rows = (tmp_path / "step_2" / "per_image.csv").read_text().splitlines()
  assert rows[0] == "s1_path,class,psnr,ssim,mae,rmse" and len(rows) == 25
  assert rows[1].split(",")[0].endswith(".png") and rows[1].split(",")[1] in result["per_class"]
  assert Image.open(tmp_path / "step_2" / "grid.png").size == (3 * 128, 22 + 3 * 128)  # 32² tiles enlarged 4×
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert "floor: other_target" in workflow.format_table(result)


def test_steps_of_one_run_share_one_compiled_scorer(workdir):
  """eval --steps=all compiles the scorer once for the checkpoints of one run; another mode needs its own."""
  first, second = (load_generator(workdir, step) for step in (1, 2))
  evaluator = workflow.evaluator_for(first, 4, None)
  assert workflow.evaluator_for(second, 4, evaluator) is evaluator
  assert workflow.evaluator_for(load_generator(workdir, 2, "train"), 4, evaluator) is not evaluator
  assert workflow.evaluator_for(second, 8, evaluator) is not evaluator


def test_per_image_csv_round_trips_paths_with_commas(workdir, demo_root, tmp_path):
  """A class folder named with a comma: csv.reader gives back exactly the paths and scores eval scored."""
  root = tmp_path / "data"
  shutil.copytree(demo_root, root)
  (root / "urban").rename(root / "urban, north")
  (result,) = workflow.evaluate(workdir, data_root=str(root), split="all", output_dir=str(tmp_path / "out"))
  with open(tmp_path / "out" / "step_2" / "per_image.csv", newline="") as file:
    header, *rows = list(csv.reader(file))
  assert header == ["s1_path", "class", *distortion.METRICS] and len(rows) == result["n"] == 24
  commas = [row for row in rows if row[1] == "urban, north"]
  assert len(commas) == 6 and all(row[0].startswith("urban, north/s1/") for row in commas)
  assert [row[0] for row in rows] == sorted(row[0] for row in rows)  # scored in s1-path order
  assert np.mean([float(row[2]) for row in rows]) == pytest.approx(result["overall"]["psnr"]["mean"], abs=1e-5)


@pytest.mark.parametrize("mode, batch_size", [("eval", 5), ("train", 5)])
def test_both_inference_modes_run_and_are_recorded(workdir, tmp_path, mode, batch_size):
  (result,) = workflow.evaluate(workdir, split="all", mode=mode, batch_size=batch_size, output_dir=str(tmp_path))
  assert result["mode"] == mode and result["batch_size"] == batch_size and result["n"] == 24
  assert np.isfinite(result["overall"]["psnr"]["mean"])


def test_train_mode_needs_two_images(workdir):
  with pytest.raises(Exception, match="--batch_size"):
    workflow.evaluate(workdir, split="all", mode="train", batch_size=1)


def test_split_naming_missing_files_is_reported(workdir, tmp_path):
  bad = tmp_path / "run"
  bad.mkdir()
  (bad / "checkpoints").symlink_to(workdir / "checkpoints")
  split = json.loads((workdir / "split.json").read_text())
  split["data"]["test"].append("urban/s1/ROIs9000_demo_s1_999_p1.png")
  (bad / "split.json").write_text(json.dumps(split))
  with pytest.raises(DataError, match="ROIs9000_demo_s1_999_p1.png"):
    workflow.evaluate(bad, split="test")


def test_validation_during_training_keeps_the_best_checkpoint(demo_root, tmp_path):
  """Validation every step, keep the last 1: the best checkpoint by validation PSNR survives and is named."""
  loop.train(tiny_config(demo_root, num_train_steps=4, eval_every_steps=1, checkpoint_every_steps=1,
                            keep_checkpoints=1, log_every_steps=1, sample_every_steps=4,
                            **{"optimizer.learning_rate": 2e-3}), tmp_path)
  logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  val_psnr = {entry["step"]: entry["val_psnr"] for entry in logged if "val_psnr" in entry}
  assert sorted(val_psnr) == [1, 2, 3, 4] and {"loss_G", "val_ssim"} <= set().union(*logged)
  best = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
  assert best["step"] == max(val_psnr, key=val_psnr.get) and best["val_psnr"] == pytest.approx(val_psnr[best["step"]])
  kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert kept == sorted({4, best["step"]})
  (result,) = workflow.evaluate(tmp_path, split="val", steps="best", output_dir=str(tmp_path / "eval_best"))
  assert result["step"] == best["step"]
  assert result["overall"]["psnr"]["mean"] == pytest.approx(best["val_psnr"], abs=1e-4)


def test_fid_kid_lpips_and_saved_images(workdir, tmp_path, random_feature_weights):
  """--fid --lpips --save_images: FID/KID beside PSNR overall and per class (with n), LPIPS per image and as
  mean ± std, for the model and the floors; the saved PNGs and listed targets give back the reported FID."""
  from sar2optical.metrics import distances, feature_weights
  (inception, inception_sha), (alexnet, alexnet_sha) = random_feature_weights.values()
  options = workflow.FeatureOptions(fid=True, lpips=True, fid_weights=str(inception), fid_weights_sha256=inception_sha,
                                      lpips_backbone_weights=str(alexnet), lpips_backbone_weights_sha256=alexnet_sha)
  (result,) = workflow.evaluate(workdir, split="all", batch_size=8, output_dir=str(tmp_path), features=options,
                                  save_images=True)
  saved = json.loads((tmp_path / "step_2" / "metrics.json").read_text())
  assert saved["overall"]["fid"] == result["overall"]["fid"]
  fid, kid = result["overall"]["fid"], result["overall"]["kid"]
  assert fid["n"] == [24, 24] and fid["value"] > 0 and any("singular" in w for w in fid["warnings"])
  assert kid["n"] == [24, 24] and np.isfinite(kid["value"]) and "subset size 24" in kid["warnings"][0]
  for entry in result["per_class"].values():
    assert entry["fid"]["n"] == [6, 6] and np.isfinite(entry["fid"]["value"]) and set(entry["lpips"]) == {"mean", "std"}
  assert set(result["overall"]["lpips"]) == {"mean", "std"} and result["overall"]["lpips"]["mean"] > 0
  other = result["floors"]["other_target"]
  assert abs(other["overall"]["fid"]["value"]) < 1e-3 * fid["value"]  # the target set against itself
  assert other["per_class"]["agri"]["fid"]["value"] > 0 and "lpips" in result["floors"]["mean_colour"]["overall"]
  record = result["feature_metrics"]
  assert record["fid"]["weights"]["sha256"] == inception_sha and not record["fid"]["weights"]["published_file"]
  assert record["lpips"]["weights"]["backbone"]["sha256"] == alexnet_sha and record["lpips"]["weights"]["linear"]["published_file"]
  with open(tmp_path / "step_2" / "per_image.csv", newline="") as file:
    header, *rows = list(csv.reader(file))
  assert header == ["s1_path", "class", *distortion.METRICS, "lpips"] and len(rows) == 24
  assert np.mean([float(row[-1]) for row in rows]) == pytest.approx(result["overall"]["lpips"]["mean"], abs=1e-5)
  assert "FID" in workflow.format_table(result) and "warning: only 24 images" in workflow.format_table(result)
  generated = [tmp_path / "step_2" / "images" / row[0] for row in rows]
  targets = (tmp_path / "step_2" / "targets.txt").read_text().splitlines()
  assert all(path.is_file() for path in generated) and len(targets) == 24 and all(pathlib.Path(t).is_file() for t in targets)
  network, _ = feature_weights.fid_network("standard", str(inception), inception_sha)
  features = [np.concatenate([np.asarray(network(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[i:i + 8]])))
                              for i in range(0, 24, 8)]) for paths in (generated, targets)]
  assert distances.fid(*features).value == pytest.approx(fid["value"], rel=1e-4)


def test_a_model_under_a_floor_is_told_so_in_the_table():
  def entry(psnr: float, ssim: float) -> dict:
    return {"n": 4, "psnr": {"mean": psnr, "std": 0.0}, "ssim": {"mean": ssim, "std": 0.0}}

  result = {"step": 5, "split": "test", "mode": "eval", "n": 4, "per_class": {}, "overall": entry(11.27, 0.20),
            "floors": {"mean_colour": {"n": 4, "overall": entry(14.90, 0.15)},
                       "other_target": {"n": 4, "overall": entry(10.0, 0.10)}}}
  remarks = [line for line in workflow.format_table(result).splitlines() if line.startswith("remark:")]
  assert remarks == ["remark: the model scores under the mean_colour floor on PSNR: on these pairs it does no better "
                     "than painting every pixel the mean training colour"]
  result["overall"] = entry(15.0, 0.2)
  assert "remark:" not in workflow.format_table(result)
