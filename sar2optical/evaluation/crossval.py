r"""Leave-one-scene-out cross-validation: how a recipe does on scenes it never saw.

  python -m sar2optical.commands.crossval --config=configs/pix2pix.py:few_scenes --workdir=runs/loso \
      --config.data.root=/path/to/pairs [--lpips] [--fid]

The pairs under `data.root` fall into scene groups (`splits.scene_groups`: SEN1-2's scene ids). For
each group, one run trains on every other group with the config's budget (`training.loop.train`, in
WORKDIR/folds/<group>/, resuming like train.py) and the held-out group is scored in eval mode
(`workflow.evaluate`, its split `test`) beside the mean-colour floor of that fold's training
scenes. A finished fold (its fold.json written for the same config) is not redone. WORKDIR/crossval.json
holds every fold and the mean ± std over folds (population std, ddof 0) of the model and of the floor.
`--held_out=GROUP,...` runs those folds only (a longer budget on a few folds; folds spread over machines
that share WORKDIR, gathered by a last run without it, which redoes none).
"""

import json
import pathlib
import re
from collections.abc import Sequence

import ml_collections
import numpy as np
from absl import logging

from sar2optical.configs import fields
from sar2optical.core import storage
from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import splits
from sar2optical.evaluation import workflow
from sar2optical.training import loop

RESULT_FILE = "crossval.json"
FOLD_FILE = "fold.json"
FOLD_SPLIT_FILE = "fold_split.json"
FLOOR = "mean_colour"


def fold_split(groups: dict[str, list[pairs_lib.Pair]], held_out: str) -> dict:
  """The split of one fold: every other group's pairs in train, none in val, the held-out group's in test."""
  def paths_of(names):
    return sorted(pair.s1 for name in names for pair in groups[name])
  return {"data": {"train": paths_of(name for name in groups if name != held_out), "val": [],
                   "test": paths_of([held_out])}}


def fold_directory(workdir: pathlib.Path, group: str) -> pathlib.Path:
  """WORKDIR/folds/<group>, with every character but letters, digits, '.', '_' and '-' made '_'."""
  return workdir / "folds" / re.sub(r"[^A-Za-z0-9._-]", "_", group)


def overall_values(result: dict) -> dict[str, float]:
  """{metric: value} of an eval result's `overall` entry: per-image means, FID/KID values."""
  return {name: entry["mean"] if "mean" in entry else entry["value"] for name, entry in result["overall"].items()}


def run_fold(config: ml_collections.ConfigDict, directory: pathlib.Path, groups: dict[str, list[pairs_lib.Pair]],
             held_out: str, *, batch_size: int, features: workflow.FeatureOptions) -> dict:
  """Trains (or resumes) the fold holding out `held_out`, scores it, writes and returns its fold.json."""
  record = directory / FOLD_FILE
  if record.exists():
    done = json.loads(record.read_text())
    if done["config"] == config.to_dict():
      logging.info("Cross-validation: fold %s is done (%s)", held_out, record)
      return done
  directory.mkdir(parents=True, exist_ok=True)
  storage.write_whole(directory / FOLD_SPLIT_FILE, json.dumps(fold_split(groups, held_out), indent=1) + "\n")
  fold_config = ml_collections.ConfigDict(config.to_dict())
  fold_config.data.split_file = str(directory / FOLD_SPLIT_FILE)
  loop.train(fold_config, directory)
  (result,) = workflow.evaluate(directory, split="test", steps="latest", batch_size=batch_size, grid_pairs=4,
                                  features=features)
  fold = {"held_out": held_out, "n": result["n"], "train_pairs": sum(len(g) for g in groups.values()) - result["n"],
          "step": result["step"], "model": overall_values(result),
          FLOOR: overall_values(result["floors"][FLOOR]), "config": config.to_dict()}
  storage.write_whole(record, json.dumps(fold, indent=2) + "\n")
  return fold


def summarize(folds: Sequence[dict]) -> dict[str, dict[str, dict[str, float]]]:
  """{"model" | FLOOR: {metric: {"mean", "std"}}} over folds (std with ddof 0), for the metrics every fold has."""
  summary = {}
  for owner in ("model", FLOOR):
    names = set.intersection(*(set(fold[owner]) for fold in folds))
    summary[owner] = {name: {"mean": float(np.mean([fold[owner][name] for fold in folds])),
                             "std": float(np.std([fold[owner][name] for fold in folds]))}
                      for name in sorted(names) if all(fold[owner][name] is not None for fold in folds)}
  return summary


def chosen_groups(groups: dict[str, list[pairs_lib.Pair]], held_out: Sequence[str], root: str) -> list[str]:
  """The groups to hold out, sorted: those of `held_out`, each a group of `root`, or every group when it is empty."""
  unknown = sorted(set(held_out) - set(groups))
  if unknown:
    raise DataError(f"held_out: {', '.join(unknown)}: no such scene group in {root}; its groups are "
                    f"{', '.join(sorted(groups))}")
  return sorted(set(held_out) or groups)


def crossval(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, held_out: Sequence[str] = (),
             batch_size: int = 8, features: workflow.FeatureOptions = workflow.FeatureOptions()) -> dict:
  """Runs leave-one-scene-out over `config.data.root`: the folds holding out `held_out`'s groups, or every fold.

  Writes and returns WORKDIR/crossval.json's content: the folds run, their summary, and every group's name.
  """
  fields.validate(config)
  if config.data.source != "folder" or config.data.split_file:
    raise ConfigError("config.data.source / config.data.split_file: cross-validation splits a folder (data.root) "
                      "by scene itself; use data.source=folder without a split file")
  groups = splits.scene_groups(pairs_lib.find_pairs(pathlib.Path(config.data.root).expanduser().resolve()))
  if len(groups) < 2:
    raise DataError(f"config.data.root: {config.data.root} holds {len(groups)} scene group; leave-one-scene-out "
                    "needs at least 2")
  names = chosen_groups(groups, held_out, config.data.root)
  workdir = storage.writable_directory(workdir, "the workdir")
  logging.info("Cross-validation: %d of %d folds (%s), %d steps each", len(names), len(groups), ", ".join(names),
               config.num_train_steps)
  folds = [run_fold(config, fold_directory(workdir, name), groups, name, batch_size=batch_size, features=features)
           for name in names]
  result = {"folds": folds, "summary": summarize(folds), "std": "population (ddof 0) over folds",
            "groups": sorted(groups), "data_root": str(config.data.root), "config": config.to_dict()}
  storage.write_whole(workdir / RESULT_FILE, json.dumps(result, indent=2) + "\n")
  return result


def format_summary(result: dict) -> str:
  """One row per fold and the mean ± std over folds, model beside the mean-colour floor, for PSNR and SSIM."""
  rows = [f"{'held out':<28}{'n':>5}{'PSNR':>10}{'floor':>8}{'SSIM':>10}{'floor':>8}"]
  for fold in result["folds"]:
    rows.append(f"{fold['held_out']:<28}{fold['n']:>5}{fold['model']['psnr']:>10.3f}{fold[FLOOR]['psnr']:>8.3f}"
                f"{fold['model']['ssim']:>10.4f}{fold[FLOOR]['ssim']:>8.4f}")
  for owner in ("model", FLOOR):
    rows.append(f"{owner:<10} mean ± std over {len(result['folds'])} of {len(result['groups'])} folds: " + "  ".join(
        f"{name.upper()} {entry['mean']:.4f} ± {entry['std']:.4f}" for name, entry in result["summary"][owner].items()))
  return "\n".join(rows)
