r"""Leave-one-scene-out cross-validation: how a recipe does on scenes it never saw.

  python -m sar2optical.commands.crossval --config=configs/pix2pix.py:few_scenes --workdir=runs/loso \
      --config.data.root=/path/to/pairs [--lpips] [--fid] [--tta] [--samples=K]

The pairs under `data.root` fall into scene groups (`splits.scene_groups`: SEN1-2's scene ids). For
each group, one run trains on every other group with the config's budget (`training.loop.train`, in
WORKDIR/folds/<group>/, resuming like train.py) and the held-out group is scored in eval mode
(`workflow.evaluate`, its split `test`) beside the mean-colour floor of that fold's training
scenes and the two diagnostic floors (the held-out scene's own mean colour, each target's own mean colour),
with eval's realism measures and transfer diagnostics (`metrics.realism`); `--tta` and `--samples` score the
mean of each output over its flips and rotations and over dropout samples, as eval.py. A finished fold (its
fold.json written for the same config and averaging) is not redone; a fold trained for the same config but
scored with other averaging is scored again (training, already at its last step, does nothing), as is one
whose fold.json was deleted. WORKDIR/crossval.json holds every fold and the mean ± std over folds
(population std, ddof 0) of the model and of the floors, for the metrics every fold has (an older fold.json,
without the newer ones, leaves them out).
`--held_out=GROUP,...` runs those folds only (a longer budget on a few folds; folds spread over machines
that share WORKDIR, gathered by a last run without it, which redoes none).
"""

import dataclasses
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
from sar2optical.inference.restore import NO_AVERAGING, Averaging
from sar2optical.training import loop

RESULT_FILE = "crossval.json"
FOLD_FILE = "fold.json"
FOLD_SPLIT_FILE = "fold_split.json"
FLOOR = "mean_colour"
#: The floors a fold records: the baseline, then the diagnostics that see the held-out scene's colours.
FLOORS = (FLOOR, "scene_colour", "image_colour")
#: The model's transfer diagnostics as a fold records them (`transfer_values`).
TRANSFER = ("correlation", "correlation_r", "correlation_g", "correlation_b", "variance_explained")


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


def transfer_values(transfer: dict) -> dict[str, float | None]:
  """eval's `transfer` flattened to `TRANSFER`'s names: the mean correlation, each channel's, variance explained."""
  correlation = transfer["correlation"]
  return {"correlation": correlation["mean"], **{f"correlation_{c}": correlation[c] for c in "rgb"},
          "variance_explained": transfer["variance_explained"]}


def fold_metrics(result: dict) -> dict[str, dict[str, float | None]]:
  """{"model" | floor of FLOORS: {metric: value}} of an eval result: overall metrics and realism measures, and the
  model's transfer diagnostics."""
  metrics = {"model": {**overall_values(result), **result["realism"]["model"], **transfer_values(result["transfer"])}}
  for floor in FLOORS:
    metrics[floor] = {**overall_values(result["floors"][floor]), **result["realism"][floor]}
  return metrics


def run_fold(config: ml_collections.ConfigDict, directory: pathlib.Path, groups: dict[str, list[pairs_lib.Pair]],
             held_out: str, *, batch_size: int, features: workflow.FeatureOptions,
             averaging: Averaging = NO_AVERAGING) -> dict:
  """Trains (or resumes) the fold holding out `held_out`, scores it, writes and returns its fold.json."""
  record = directory / FOLD_FILE
  scoring = dataclasses.asdict(averaging)
  if record.exists():
    done = json.loads(record.read_text())
    if done["config"] == config.to_dict() and done.get("averaging", dataclasses.asdict(NO_AVERAGING)) == scoring:
      logging.info("Cross-validation: fold %s is done (%s)", held_out, record)
      return done
  directory.mkdir(parents=True, exist_ok=True)
  storage.write_whole(directory / FOLD_SPLIT_FILE, json.dumps(fold_split(groups, held_out), indent=1) + "\n")
  fold_config = ml_collections.ConfigDict(config.to_dict())
  fold_config.data.split_file = str(directory / FOLD_SPLIT_FILE)
  loop.train(fold_config, directory)
  (result,) = workflow.evaluate(directory, split="test", steps="latest", batch_size=batch_size, grid_pairs=4,
                                  features=features, averaging=averaging)
  fold = {"held_out": held_out, "n": result["n"], "train_pairs": sum(len(g) for g in groups.values()) - result["n"],
          "step": result["step"], **fold_metrics(result), "averaging": scoring, "config": config.to_dict()}
  storage.write_whole(record, json.dumps(fold, indent=2) + "\n")
  return fold


def summarize(folds: Sequence[dict]) -> dict[str, dict[str, dict[str, float]]]:
  """{"model" | floor of FLOORS: {metric: {"mean", "std"}}} over folds (std with ddof 0), for the metrics every fold
  has, with a value (not None) in each."""
  summary = {}
  for owner in ("model", *FLOORS):
    names = set.intersection(*(set(fold.get(owner, {})) for fold in folds))
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
             batch_size: int = 8, features: workflow.FeatureOptions = workflow.FeatureOptions(),
             averaging: Averaging = NO_AVERAGING) -> dict:
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
  folds = [run_fold(config, fold_directory(workdir, name), groups, name, batch_size=batch_size, features=features,
                    averaging=averaging) for name in names]
  result = {"folds": folds, "summary": summarize(folds), "std": "population (ddof 0) over folds",
            "groups": sorted(groups), "data_root": str(config.data.root), "averaging": dataclasses.asdict(averaging),
            "config": config.to_dict()}
  storage.write_whole(workdir / RESULT_FILE, json.dumps(result, indent=2) + "\n")
  return result


def format_summary(result: dict) -> str:
  """Two tables, a row per fold then the mean and the std over folds: PSNR and SSIM of the model and the floors;
  the model's realism measures and transfer diagnostics. Then the other metrics' mean ± std; '—' where a fold
  (an older fold.json) or the summary has no value."""
  rows = [*_table(result, _DISTORTION_COLUMNS), *_table(result, _REALISM_COLUMNS), *_LEGEND]
  for owner in ("model", *FLOORS):
    others = {name: entry for name, entry in result["summary"].get(owner, {}).items() if name not in _TABLED}
    if others:
      rows.append(f"{owner}, mean ± std: " + "  ".join(f"{name.upper()} {entry['mean']:.4g} ± {entry['std']:.2g}"
                                                        for name, entry in others.items()))
  return "\n".join(rows)


#: (title, owner, metric) of each column of format_summary's tables.
_DISTORTION_COLUMNS = [(title, owner, metric) for metric in ("psnr", "ssim")
                       for title, owner in ((metric.upper(), "model"), ("floor", FLOOR), ("scene*", "scene_colour"),
                                            ("image*", "image_colour"))]
_REALISM_COLUMNS = [("HF ratio", "model", "high_frequency_ratio"), ("colour W1", "model", "colour_distance"),
                    *((f"corr {c.upper()}", "model", f"correlation_{c}") for c in "rgb"),
                    ("corr mean", "model", "correlation"), ("explained", "model", "variance_explained")]
_TABLED = {metric for _, _, metric in _DISTORTION_COLUMNS + _REALISM_COLUMNS}
_LEGEND = (
    "floor: the mean training colour; scene*, image*: diagnostics, not baselines: they see the held-out targets",
    "HF ratio: fine detail, generated / target (1: as much); colour W1: colour-distribution distance (0: the same)",
    "corr: correlation of predicted and true deviations from the mean training colour (> 0: learnt colours transfer)",
    "explained: variance explained, 1 − SSE / the scene's variance (< 0: worse than the scene's own mean colour)")


def _table(result: dict, columns: Sequence[tuple[str, str, str]]) -> list[str]:
  """A header, a row per fold, the mean and the std over folds of `columns` (title, owner, metric)."""
  def cell(value: float | None, title: str) -> str:
    width = max(len(title) + 2, 9)
    return f"{'—' if value is None else format(value, '.4f'):>{width}}"

  summary, folds = result["summary"], result["folds"]
  rows = [f"{'held out':<28}{'n':>5}" + "".join(f"{title:>{max(len(title) + 2, 9)}}" for title, _, _ in columns)]
  rows += [f"{fold['held_out']:<28}{fold['n']:>5}" + "".join(cell(fold.get(owner, {}).get(metric), title)
                                                              for title, owner, metric in columns) for fold in folds]
  for statistic, label in (("mean", f"mean over {len(folds)} of {len(result['groups'])} folds"),
                           ("std", "std over folds (population)")):
    rows.append(f"{label:<33}" + "".join(cell(summary.get(owner, {}).get(metric, {}).get(statistic), title)
                                         for title, owner, metric in columns))
  return rows
