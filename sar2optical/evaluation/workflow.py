"""eval.py's work: a workdir's checkpoints scored on a split, per image, per class and overall, beside the
floors, written as JSON, CSV, PNG and TensorBoard scalars.

The pairs are scored in the order of their s1 paths (`resolve.in_name_order`), so the numbers do
not depend on the order a source stores them in, and at the pixel the model learned (`scoring`): a
crop-fit model's pairs at their stored resolution, translated by predict.py's code path (`tile_engine`).
"""

import csv
import dataclasses
import io
import json
import os
import pathlib
import time
from collections.abc import Sequence

import ml_collections
import numpy as np
from absl import logging
from PIL import Image
from tensorboardX import SummaryWriter

from sar2optical.checkpoints import manager
from sar2optical.core import storage
from sar2optical.core.errors import CheckpointDeleted, CheckpointError, ConfigError, DataError
from sar2optical.data import resolve, sources
from sar2optical.inference import tile_engine
from sar2optical.inference.restore import NO_AVERAGING, Averaging, Mode, TrainedGenerator, load_generator
from sar2optical.metrics import distortion, feature_collector, feature_weights, realism
from sar2optical.metrics.scoring import DIAGNOSTIC_FLOORS, Evaluator, Scores
from sar2optical.training.log import pair_grid

_REMEDY = "free space there (or pass another --output_dir) and run the same command again"


def parse_steps(steps: str, available: Sequence[int]) -> list[int | str]:
  """'latest', 'best', 'all' or 'N[,M...]' → checkpoint steps (each checked when restored)."""
  if not available:
    return []
  if steps == "all":
    return list(available)
  if steps in ("latest", "best"):
    return [steps]
  try:
    return [int(s) for s in steps.split(",")]
  except ValueError:
    raise ConfigError(f"--steps: expected latest, best, all or N[,M...], got {steps!r}") from None


def training_mean_colour(evaluator: Evaluator, workdir: pathlib.Path, train_source: sources.PairSource | None,
                         scene_colour: np.ndarray) -> tuple[np.ndarray, str]:
  """The mean training colour (cached in WORKDIR/eval/), or `scene_colour` (the evaluated pairs') when the
  training pairs are absent."""
  if train_source is None:
    return scene_colour, "evaluated pairs (the training pairs are not there)"
  source = f"training split ({train_source.description})"
  cache = workdir / "eval" / "mean_train_colour.json"
  cached = json.loads(cache.read_text()) if cache.exists() else {}
  if cached.get("source") == source:
    return np.asarray(cached["mean_colour"]), source
  colour = evaluator.mean_colour(train_source)
  cache.parent.mkdir(parents=True, exist_ok=True)
  storage.write_whole(cache, json.dumps({"source": source, "mean_colour": colour.tolist()}) + "\n")
  return colour, source


@dataclasses.dataclass(frozen=True)
class FeatureOptions:
  """Which feature metrics to compute (FID/KID, LPIPS) and their weight files; None: environment variable or default."""
  fid: bool = False
  lpips: bool = False
  fid_variant: str = "standard"
  fid_weights: str | None = None
  fid_weights_sha256: str | None = None
  lpips_net: str = "alex"
  lpips_weights: str | None = None
  lpips_weights_sha256: str | None = None
  lpips_backbone_weights: str | None = None
  lpips_backbone_weights_sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class FeatureNetworks:
  """The checked networks (None when not asked for) and metrics.json's description of them."""
  inception: object | None
  lpips: object | None
  description: dict


def feature_networks(options: FeatureOptions) -> FeatureNetworks:
  """Loads and checks the asked-for weights (before anything is written): CheckpointError naming a bad file."""
  inception, fid_record = (feature_weights.fid_network(options.fid_variant, options.fid_weights, options.fid_weights_sha256)
                           if options.fid else (None, None))
  lpips, lpips_record = (feature_weights.lpips_network(options.lpips_net, options.lpips_weights, options.lpips_weights_sha256,
                                               options.lpips_backbone_weights,
                                               options.lpips_backbone_weights_sha256)
                         if options.lpips else (None, None))
  return FeatureNetworks(inception, lpips, feature_collector.description(options.fid_variant if options.fid else None, fid_record,
                                                               options.lpips_net if options.lpips else None,
                                                               lpips_record))


def evaluate(workdir: str | pathlib.Path, *, data_root: str | None = None, split: str = "test",
             steps: str = "latest", batch_size: int = 8, mode: Mode = "eval", output_dir: str | None = None,
             grid_pairs: int = 8, data_source: str = "folder", tfds_data_dir: str = "",
             tfds_config: str = "pixels", features: FeatureOptions = FeatureOptions(),
             save_images: bool = False, seasons: str | None = None,
             averaging: Averaging = NO_AVERAGING) -> list[dict]:
  """Evaluates each requested checkpoint of `workdir`; writes metrics.json, per_image.csv and grid.png per step.

  The pairs are a split of a folder (`data_root`, default the config's) per WORKDIR/split.json, or
  with `data_source="tfds"` a split of the sen1_2 TFDS build in `tfds_data_dir`. With `features`,
  FID/KID and LPIPS too; with `save_images`, the generated images in step_N/images/ (s1 paths) and
  the targets' paths in step_N/targets.txt. `seasons` (e.g. "fall") replaces the config's data.seasons.
  `averaging` makes each generated image a mean (flips and rotations, dropout samples), as predict.py's --tta
  and --samples; it is recorded in metrics.json.
  """
  networks = feature_networks(features) if features.fid or features.lpips else None
  workdir = storage.as_path(workdir, "the workdir")
  if data_root:
    storage.as_path(data_root, "--data_root")
  checkpoints = manager.Checkpoints(workdir, create=False)
  available = checkpoints.all_steps()
  checkpoints.close()
  requested = parse_steps(steps, available)
  if not requested:
    raise DataError(f"no checkpoints in {manager.checkpoint_dir(workdir)}")
  output_root = storage.writable_directory(output_dir or workdir / "eval", "--output_dir:" if output_dir else "the folder")
  results, evaluator = [], None
  # One event file per eval run: a bucket's object cannot be appended to by two writers.
  with SummaryWriter(os.fspath(workdir / "tensorboard")) as tensorboard:
    for step in requested:
      generator = load_unless_deleted(workdir, step, mode, averaging)
      if generator is None:
        continue
      evaluator = evaluator_for(generator, batch_size, evaluator)
      data = ml_collections.ConfigDict({**generator.config.data.to_dict(), "source": data_source,
                                        "root": data_root or generator.config.data.root,
                                        "tfds_data_dir": tfds_data_dir, "tfds_config": tfds_config,
                                        "seasons": generator.config.data.get("seasons", "") if seasons is None
                                        else seasons})
      run_data = resolve.resolve(data, workdir, seed=generator.config.seed, record=False)
      if data_source == "folder" and step == requested[0]:  # a TFDS record is read whole to name its class
        logging.info("Split %s: %s", split, resolve.composition(run_data.source(split)))
      directory = output_root / f"step_{generator.step}"
      scored_root = storage.as_path(data.root, "--data_root") if data_source == "folder" else None
      result, scores, names, labels = evaluate_step(generator, workdir, run_data, split, evaluator=evaluator,
                                                    grid_pairs=grid_pairs, networks=networks,
                                                    images_dir=directory / "images" if save_images else None,
                                                    data_root=scored_root)
      write_outputs(directory, result, scores, names, labels)
      write_tensorboard(tensorboard, result)
      logging.info("Evaluated step %d on %d %s pairs (%.1f images/s); outputs in %s", generator.step, result["n"],
                   split, result["images_per_second"], directory)
      results.append(result)
  return results


def load_unless_deleted(workdir: pathlib.Path, step: int | str, mode: Mode,
                        averaging: Averaging = NO_AVERAGING) -> TrainedGenerator | None:
  """The generator of `step` (in `mode`, with `averaging`); None (logged) when the training run's retention
  deleted that listed step while eval ran; for 'latest', the newer latest when the one being read was deleted
  (training moved on)."""
  while True:
    try:
      return load_generator(workdir, step, mode, averaging)
    except CheckpointError as error:
      if step == "latest":
        if isinstance(error, CheckpointDeleted):
          continue
        raise
      if (manager.checkpoint_dir(workdir) / str(step)).is_dir():  # retention moves a step away in one rename
        raise
      logging.warning("Step %d was deleted by the training run (config.keep_checkpoints) since eval listed the "
                      "steps; skipped", step)
      return None


def evaluator_for(generator: TrainedGenerator, batch_size: int, previous: Evaluator | None) -> Evaluator:
  """`previous` when it scores the same network, pixel mapping, fit, mode and averaging as `generator` needs, else a
  new one:
  eval --steps=all compiles once, not once a step (bench/soak.py: 6.8 → 0.43 s, +0.43 → +0.13 MB RSS a step).

  A crop-fit model is scored as predict.py translates (`tile_engine.TiledTranslation`, `batch_size` tiles a call).
  """
  tiled = tile_engine.scoring_translation(generator, batch_size)
  wanted = (generator.network, generator.pixels, generator.image_size, generator.in_channels,
            batch_size, generator.mode, generator.config.seed, tiled is not None, generator.averaging)
  if previous is not None and wanted == (previous.network, previous.pixels, previous.image_size,
                                         previous.in_channels, previous.batch_size, previous.mode, previous.seed,
                                         previous.tiled is not None, previous.averaging):
    return previous
  return Evaluator(generator.network, generator.pixels, image_size=generator.image_size, in_channels=generator.in_channels,
                   batch_size=batch_size, mode=generator.mode, seed=generator.config.seed, tiled=tiled,
                   averaging=generator.averaging)


def evaluate_step(generator: TrainedGenerator, workdir: pathlib.Path, run_data: resolve.RunData, split: str, *,
                  evaluator: Evaluator, grid_pairs: int, networks: FeatureNetworks | None = None,
                  images_dir: pathlib.Path | None = None,
                  data_root: storage.Path | None = None) -> tuple[dict, Scores, list[str], list[str]]:
  """metrics.json's content, the per-image scores, and the pairs' s1 paths and classes, for one generator.

  With `networks`, LPIPS joins the per-image metrics (model and the mean_colour and other_target floors) and
  FID/KID entries join the overall and per-class ones; with `images_dir`, the generated images are saved there as
  PNG. `realism` (model and floors) and `transfer` (the model's, beyond the mean training colour) are gathered in
  the same pass (`metrics.realism`).
  """
  eval_source = resolve.in_name_order(run_data.source(split))
  if not len(eval_source):
    raise DataError(f"--split={split}: no pairs of {run_data.description} in that split of "
                    f"{workdir / resolve.SPLIT_FILE}")
  try:
    train_source = run_data.source("train") if run_data.size("train") else None
  except DataError:  # another data root, without the training pairs
    train_source = None
  scene_colour = evaluator.mean_colour(eval_source)
  mean_colour, colour_source = training_mean_colour(evaluator, workdir, train_source, scene_colour)
  names, labels = zip(*(eval_source.name_and_label(i) for i in range(len(eval_source))))
  collector = (feature_collector.FeatureCollector(len(eval_source), networks.inception, networks.lpips,
                                        np.round(mean_colour * 255)) if networks else None)
  set_measures = realism.Collector(mean_colour, scene_colour)
  sinks = [sink for sink in (collector, set_measures, image_saver(images_dir, names) if images_dir else None) if sink]

  def on_batch(*batch) -> None:
    for sink in sinks:
      sink(*batch)

  start = time.perf_counter()
  scores = evaluator.score(generator.g_params, generator.g_stats, eval_source, mean_colour=mean_colour,
                           scene_colour=scene_colour, grid_pairs=grid_pairs, progress_label=f"step {generator.step}",
                           on_batch=on_batch)
  if collector:
    add_lpips(scores, collector)
  seconds = time.perf_counter() - start
  floors = {name: distortion.aggregate(values, labels) for name, values in scores.floors.items()}
  if "mean_colour" in floors:
    floors["mean_colour"].update(mean_colour_rgb=mean_colour.tolist(), source=colour_source)
    floors["scene_colour"].update(mean_colour_rgb=scene_colour.tolist(), description=_FLOOR_MEANING["scene_colour"])
    floors["image_colour"].update(description=_FLOOR_MEANING["image_colour"])
  result = {"step": generator.step, "mode": generator.mode, "averaging": dataclasses.asdict(generator.averaging),
            "split": split, **distortion.aggregate(scores.model, labels),
            "floors": floors, "realism": set_measures.realism(), "transfer": set_measures.transfer.to_json(),
            "batch_size": evaluator.batch_size, "data": eval_source.description,
            "images_per_second": len(eval_source) / seconds, "config": generator.config.to_dict()}
  if collector:
    partner = distortion.derangement(len(labels), generator.config.seed) if scores.floors else None
    add_set_distances(result, collector.set_distances(labels, partner))
    result["feature_metrics"] = networks.description
  if images_dir:
    write_target_list(images_dir.parent / "targets.txt", eval_source, data_root)
  return result, scores, list(names), list(labels)


def add_lpips(scores: Scores, collector: feature_collector.FeatureCollector) -> None:
  """LPIPS as one more per-image metric of the model and of the floors the collector scores (not the diagnostic
  ones)."""
  if collector.lpips is None:
    return
  scores.model["lpips"] = collector.lpips_values["model"]
  for floor, values in scores.floors.items():
    if floor in collector.lpips_values:
      values["lpips"] = collector.lpips_values[floor]


def add_set_distances(result: dict, set_distances: dict) -> None:
  """FID/KID entries beside the per-image metrics: `overall.fid`, `per_class.<c>.fid`, the floors' likewise."""
  for owner, entries in set_distances.items():
    target = result if owner == "model" else result["floors"][owner]
    target["overall"].update(entries["overall"])
    for label, entry in entries["per_class"].items():
      target["per_class"][label].update(entry)


def image_saver(images_dir: pathlib.Path, names: Sequence[str]):
  """A batch sink writing each generated image as PNG at images_dir/<its s1 path, .png>."""
  def save(index, valid, generated, target, other_target) -> None:
    del target, other_target
    for row, i in zip(np.flatnonzero(valid), index):
      path = images_dir / pathlib.PurePosixPath(names[i]).with_suffix(".png")
      encoded = io.BytesIO()
      Image.fromarray(generated[row]).save(encoded, format="PNG")
      with storage.disk_full_reported(images_dir, lambda: encoded.tell() * len(names), _REMEDY):
        path.parent.mkdir(parents=True, exist_ok=True)
        storage.write_whole(path, encoded.getvalue())
  return save


def write_target_list(path: pathlib.Path, source: sources.PairSource, data_root: storage.Path | None) -> None:
  """The scored targets' files, one per line in scoring order; a TFDS build has no files: its records' names."""
  lines = [str(data_root / source[i].s2) if data_root else f"tfds record of {source.name_and_label(i)[0]}"
           for i in range(len(source))]
  storage.write_whole(path, "\n".join(lines) + "\n")


def write_outputs(directory: pathlib.Path, result: dict, scores: Scores, names: Sequence[str],
                  labels: Sequence[str]) -> None:
  """metrics.json, per_image.csv (s1_path, class, metrics; csv-quoted) and grid.png (SAR | generated | target).

  Each file is written whole or not at all (`storage.written_whole`), metrics.json last; on a full disk,
  DiskFull names the folder and the size of the three.
  """
  rows = io.StringIO()
  writer = csv.writer(rows, lineterminator="\n")
  columns = list(scores.model)  # distortion.METRICS, then lpips when computed
  writer.writerow(["s1_path", "class", *columns])
  for i, (name, label) in enumerate(zip(names, labels)):
    writer.writerow([name, label, *(f"{scores.model[m][i]:.6f}" for m in columns)])
  files = {"per_image.csv": rows.getvalue().encode()}
  if scores.grid_rows:
    grid = io.BytesIO()
    Image.fromarray(pair_grid(scores.grid_rows, labels)).save(grid, format="PNG")  # rows: the first pairs
    files["grid.png"] = grid.getvalue()
  files["metrics.json"] = (json.dumps(result, indent=2) + "\n").encode()
  with storage.disk_full_reported(directory.parent, lambda: sum(map(len, files.values())), _REMEDY):
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
      storage.write_whole(directory / name, data)


def write_tensorboard(writer: SummaryWriter, result: dict) -> None:
  """Overall metrics as TensorBoard scalars `eval_<split>/<metric>` at the checkpoint's step."""
  for name, value in result["overall"].items():
    scalar = value["mean"] if "mean" in value else value["value"]  # per-image means; FID/KID values
    if scalar is not None:
      writer.add_scalar(f"eval_{result['split']}/{name}", scalar, result["step"])


def format_table(result: dict) -> str:
  """Rows per class and overall (mean ± std; FID and KID values when computed), then the floors' overall rows, then
  the realism and transfer block (`realism_rows`)."""
  per_image = [m for m in (*distortion.METRICS, "lpips") if m in result["overall"]]
  per_set = [m for m in ("fid", "kid") if m in result["overall"]]
  header = (f"{'':<22}{'n':>5}" + "".join(f"{m.upper():>18}" for m in per_image)
            + "".join(f"{m.upper():>12}" for m in per_set))
  rows = [f"step {result['step']}  split {result['split']}  mode {result['mode']}", header]

  def value(entry: dict | None) -> str:
    return f"{'—' if entry is None or entry['value'] is None else format(entry['value'], '.4f'):>12}"

  def row(name: str, entry: dict) -> str:
    return (f"{name:<22}{entry['n']:>5}" + "".join(
        f"{entry[m]['mean']:>10.4f} ± {entry[m]['std']:<6.4f}" if m in entry else f"{'—':>18}" for m in per_image)
            + "".join(value(entry.get(m)) for m in per_set))

  rows += [row(label, entry) for label, entry in result["per_class"].items()]
  rows.append(row("overall", {"n": result["n"], **result["overall"]}))
  for name, floor in result["floors"].items():
    rows.append(row(_floor_label(name), {"n": floor["n"], **floor["overall"]}))
  rows += realism_rows(result)
  warnings = sorted({w for entry in (result["overall"], *result["per_class"].values()) for m in per_set
                     for w in entry.get(m, {}).get("warnings", [])})
  rows += [f"warning: {w}" for w in warnings]
  rows += [f"remark: {remark}" for remark in under_floors(result)]
  return "\n".join(rows)


def _floor_label(name: str) -> str:
  return f"floor: {name}" + ("*" if name in DIAGNOSTIC_FLOORS else "")


def _number(value: float | None, width: int, digits: int = 4) -> str:
  return f"{'—' if value is None else format(value, f'.{digits}f'):>{width}}"


def realism_rows(result: dict) -> list[str]:
  """The high-frequency ratio and colour distance of the model and the floors, the model's transfer beyond the mean
  training colour, and what the starred floors are; none for a result without them."""
  if "realism" not in result:
    return []
  rows = [f"{'realism':<22}{'HF ratio':>10}{'colour W1':>11}"]
  rows += [f"{'model' if owner == 'model' else _floor_label(owner):<22}"
           f"{_number(entry['high_frequency_ratio'], 10)}{_number(entry['colour_distance'], 11)}"
           for owner, entry in result["realism"].items()]
  correlation = result["transfer"]["correlation"]
  rows.append("transfer beyond the mean training colour: correlation " + "  ".join(
      f"{channel.upper()} {_number(correlation[channel], 0, 3)}" for channel in (*realism.CHANNELS, "mean"))
      + f"; variance explained {_number(result['transfer']['variance_explained'], 0, 3)}")
  if any(name in DIAGNOSTIC_FLOORS for name in result["floors"]):
    rows.append("* diagnostics, not baselines: they see the scored targets' colours; a model is expected under them")
  return rows


def under_floors(result: dict) -> list[str]:
  """A line for each baseline floor whose overall PSNR or SSIM the model's does not beat: it translates no better
  than that constant or unrelated image. The diagnostic floors, which see the targets' colours, get none."""
  remarks = []
  for name, floor in result["floors"].items():
    if name in DIAGNOSTIC_FLOORS:
      continue
    lower = [metric.upper() for metric in ("psnr", "ssim")
             if metric in floor["overall"] and result["overall"][metric]["mean"] <= floor["overall"][metric]["mean"]]
    if lower:
      remarks.append(f"the model scores under the {name} floor on {' and '.join(lower)}: on these pairs it does no "
                     f"better than {_FLOOR_MEANING[name]}")
  return remarks


_FLOOR_MEANING = {"mean_colour": "painting every pixel the mean training colour",
                  "other_target": "showing another pair's optical image",
                  "scene_colour": "diagnostic, not a baseline: a constant image of the scored pairs' own mean colour "
                                  "(it sees the targets)",
                  "image_colour": "diagnostic, not a baseline: each target's own mean colour as a constant image "
                                  "(it sees the target): the error left is what remains once the colour shift of "
                                  "each whole image, which SAR cannot explain, is removed"}
