"""Leave-one-scene-out cross-validation on a tiny model: one run per held-out scene group, one JSON, resumable."""

import json
import shutil

import pytest
from conftest import tiny_config

from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import splits
from sar2optical.evaluation import crossval
from sar2optical.inference.restore import Averaging


def two_scene_root(demo_root, root):
  """A copy of the first two scene groups of the demo set."""
  groups = splits.scene_groups(pairs_lib.find_pairs(demo_root))
  for name in sorted(groups)[:2]:
    for pair in groups[name]:
      for path in (pair.s1, pair.s2):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_root / path, root / path)
  return root


def test_fold_split_holds_out_one_group(demo_root):
  groups = splits.scene_groups(pairs_lib.find_pairs(demo_root))
  held_out = sorted(groups)[0]
  split = crossval.fold_split(groups, held_out)["data"]
  assert split["test"] == sorted(pair.s1 for pair in groups[held_out]) and split["val"] == []
  assert set(split["train"]) | set(split["test"]) == {pair.s1 for group in groups.values() for pair in group}
  assert not set(split["train"]) & set(split["test"])


def test_crossval_writes_one_json_and_resumes(demo_root, tmp_path):
  root = two_scene_root(demo_root, tmp_path / "data")
  config = tiny_config(root, num_train_steps=2, log_every_steps=1)
  first, second = sorted(splits.scene_groups(pairs_lib.find_pairs(root)))
  one_fold = crossval.crossval(config, tmp_path / "cv", held_out=[second], batch_size=4)
  assert [fold["held_out"] for fold in one_fold["folds"]] == [second] and one_fold["groups"] == [first, second]
  assert "over 1 of 2 folds" in crossval.format_summary(one_fold)
  done_first = (crossval.fold_directory(tmp_path / "cv", second) / crossval.FOLD_FILE).stat().st_mtime_ns
  result = crossval.crossval(config, tmp_path / "cv", batch_size=4)  # gathers the fold above without redoing it
  written = json.loads((tmp_path / "cv" / crossval.RESULT_FILE).read_text())
  assert written == result and result["folds"][1] == one_fold["folds"][0]
  assert (crossval.fold_directory(tmp_path / "cv", second) / crossval.FOLD_FILE).stat().st_mtime_ns == done_first
  assert len(result["folds"]) == 2 and {fold["step"] for fold in result["folds"]} == {2}
  for owner in ("model", *crossval.FLOORS):
    assert {"psnr", "ssim"} <= set(result["summary"][owner])
    assert result["summary"][owner]["psnr"]["std"] >= 0
  assert {"high_frequency_ratio", "colour_distance", *crossval.TRANSFER} <= set(result["summary"]["model"])
  assert result["folds"][0]["scene_colour"]["high_frequency_ratio"] == 0  # a constant image
  summary = crossval.format_summary(result)
  assert all(heading in summary for heading in ("PSNR", "scene*", "image*", "HF ratio", "colour W1", "corr mean",
                                                "explained"))
  assert max(map(len, summary.splitlines())) <= 120
  records = sorted((tmp_path / "cv" / "folds").glob(f"*/{crossval.FOLD_FILE}"))
  before = [path.stat().st_mtime_ns for path in records]
  assert crossval.crossval(config, tmp_path / "cv", batch_size=4) == result  # finished folds are not redone
  assert [path.stat().st_mtime_ns for path in records] == before
  flipped = crossval.crossval(config, tmp_path / "cv", batch_size=4, averaging=Averaging(dihedral=True))
  assert [path.stat().st_mtime_ns for path in records] != before  # scored again with the averaging, not retrained
  assert {fold["step"] for fold in flipped["folds"]} == {2} and flipped["averaging"] == {"dihedral": True, "samples": 1}
  assert all(fold["averaging"]["dihedral"] for fold in flipped["folds"])
  assert [fold["model"]["psnr"] for fold in flipped["folds"]] != [fold["model"]["psnr"] for fold in result["folds"]]


def test_an_older_fold_record_still_summarises():
  """A fold.json from before the realism, transfer and diagnostic-floor columns: those are left out, not an error."""
  def values(psnr: float) -> dict:
    return {"psnr": psnr, "ssim": psnr / 100, "mae": 0.2, "rmse": 0.25}

  old = {"held_out": "ROIs1_old_1", "n": 3, "model": values(11.0), crossval.FLOOR: values(13.0)}
  realism = {"high_frequency_ratio": 0.5, "colour_distance": 0.1, **dict.fromkeys(crossval.TRANSFER, 0.2)}
  new = {"held_out": "ROIs1_new_2", "n": 4, "model": {**values(12.0), **realism},
         **{floor: values(14.0) for floor in crossval.FLOORS}}
  summary = crossval.summarize([old, new])
  assert summary["model"]["psnr"] == {"mean": 11.5, "std": 0.5} and set(summary["model"]) == set(values(0))
  assert summary["scene_colour"] == {} and summary[crossval.FLOOR]["psnr"]["mean"] == 13.5
  table = crossval.format_summary({"folds": [old, new], "summary": summary, "groups": ["ROIs1_new_2", "ROIs1_old_1"]})
  old_rows = [line for line in table.splitlines() if line.startswith("ROIs1_old_1")]
  assert len(old_rows) == 2 and all("—" in line for line in old_rows) and "mean over 2 of 2 folds" in table
  assert "model, mean ± std: MAE 0.2 ± 0" in table


def test_crossval_needs_a_folder_without_split_file(demo_root, tmp_path):
  with pytest.raises(ConfigError, match="config.data.split_file"):
    crossval.crossval(tiny_config(demo_root, **{"data.split_file": "split.json"}), tmp_path)


def test_crossval_names_an_unknown_held_out_group(demo_root, tmp_path):
  with pytest.raises(DataError, match=r"held_out: ROIs0000_nowhere_1: no such scene group in .*; its groups are ROIs"):
    crossval.crossval(tiny_config(demo_root), tmp_path / "cv", held_out=["ROIs0000_nowhere_1"])
  assert not (tmp_path / "cv").exists()
