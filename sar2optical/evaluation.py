"""eval.py's work: a workdir's checkpoints scored on a split, per image, per class and overall, beside the
floors, written as JSON, CSV, PNG and TensorBoard scalars.

The pairs are scored in the order of their s1 paths (`resolve.in_name_order`), so the numbers do
not depend on the order a source stores them in.
"""

import csv
import json
import pathlib
import time
from collections.abc import Sequence

import ml_collections
import numpy as np
from absl import logging
from PIL import Image
from tensorboardX import SummaryWriter

from sar2optical import checkpoint, metrics, paths
from sar2optical.data import resolve, sources
from sar2optical.errors import ConfigError, DataError
from sar2optical.metric_writer import pair_grid
from sar2optical.scoring import Evaluator, Scores
from sar2optical.trained_generator import Mode, TrainedGenerator, load_generator


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
                         eval_source: sources.PairSource) -> tuple[np.ndarray, str]:
  """The mean training colour (cached in WORKDIR/eval/), or the evaluated pairs' when the training pairs are absent."""
  if train_source is None:
    return evaluator.mean_colour(eval_source), "evaluated pairs (the training pairs are not there)"
  source = f"training split ({train_source.description})"
  cache = workdir / "eval" / "mean_train_colour.json"
  cached = json.loads(cache.read_text()) if cache.exists() else {}
  if cached.get("source") == source:
    return np.asarray(cached["mean_colour"]), source
  colour = evaluator.mean_colour(train_source)
  cache.parent.mkdir(parents=True, exist_ok=True)
  cache.write_text(json.dumps({"source": source, "mean_colour": colour.tolist()}) + "\n")
  return colour, source


def evaluate(workdir: str | pathlib.Path, *, data_root: str | None = None, split: str = "test",
             steps: str = "latest", batch_size: int = 8, mode: Mode = "eval", output_dir: str | None = None,
             grid_pairs: int = 8, data_source: str = "folder", tfds_data_dir: str = "",
             tfds_config: str = "pixels") -> list[dict]:
  """Evaluates each requested checkpoint of `workdir`; writes metrics.json, per_image.csv and grid.png per step.

  The pairs are a split of a folder (`data_root`, default the config's) per WORKDIR/split.json, or
  with `data_source="tfds"` a split of the sen1_2 TFDS build in `tfds_data_dir`.
  """
  workdir = pathlib.Path(workdir)
  checkpoints = checkpoint.Checkpoints(workdir, create=False)
  available = checkpoints.all_steps()
  checkpoints.close()
  requested = parse_steps(steps, available)
  if not requested:
    raise DataError(f"no checkpoints in {checkpoint.checkpoint_dir(workdir)}")
  output_root = paths.writable_directory(output_dir or workdir / "eval", "--output_dir:" if output_dir else "the folder")
  results = []
  for step in requested:
    generator = load_generator(workdir, step, mode)
    data = ml_collections.ConfigDict({**generator.config.data.to_dict(), "source": data_source,
                                      "root": data_root or generator.config.data.root,
                                      "tfds_data_dir": tfds_data_dir, "tfds_config": tfds_config})
    run_data = resolve.resolve(data, workdir, seed=generator.config.seed, record=False)
    result, scores, names, labels = evaluate_step(generator, workdir, run_data, split, batch_size=batch_size,
                                                  grid_pairs=grid_pairs)
    directory = output_root / f"step_{generator.step}"
    write_outputs(directory, result, scores, names, labels)
    write_tensorboard(workdir, result)
    logging.info("Evaluated step %d on %d %s pairs (%.1f images/s); outputs in %s", generator.step, result["n"],
                 split, result["images_per_second"], directory)
    results.append(result)
  return results


def evaluate_step(generator: TrainedGenerator, workdir: pathlib.Path, run_data: resolve.RunData, split: str, *,
                  batch_size: int, grid_pairs: int) -> tuple[dict, Scores, list[str], list[str]]:
  """metrics.json's content, the per-image scores, and the pairs' s1 paths and classes, for one generator."""
  eval_source = resolve.in_name_order(run_data.source(split))
  if not len(eval_source):
    raise DataError(f"--split={split}: no pairs of {run_data.description} in that split of "
                    f"{workdir / resolve.SPLIT_FILE}")
  try:
    train_source = run_data.source("train") if run_data.size("train") else None
  except DataError:  # another data root, without the training pairs
    train_source = None
  evaluator = Evaluator(generator.recipe, image_size=generator.image_size, in_channels=generator.in_channels,
                        batch_size=batch_size, mode=generator.mode, seed=generator.config.seed)
  mean_colour, colour_source = training_mean_colour(evaluator, workdir, train_source, eval_source)
  start = time.perf_counter()
  scores = evaluator.score(generator.g_params, generator.g_stats, eval_source, mean_colour=mean_colour,
                           grid_pairs=grid_pairs, progress_label=f"step {generator.step}")
  seconds = time.perf_counter() - start
  names, labels = zip(*(eval_source.name_and_label(i) for i in range(len(eval_source))))
  floors = {name: metrics.aggregate(values, labels) for name, values in scores.floors.items()}
  if "mean_colour" in floors:
    floors["mean_colour"].update(mean_colour_rgb=mean_colour.tolist(), source=colour_source)
  result = {"step": generator.step, "mode": generator.mode, "split": split, **metrics.aggregate(scores.model, labels),
            "floors": floors, "batch_size": batch_size, "data": eval_source.description,
            "images_per_second": len(eval_source) / seconds, "config": generator.config.to_dict()}
  return result, scores, list(names), list(labels)


def write_outputs(directory: pathlib.Path, result: dict, scores: Scores, names: Sequence[str],
                  labels: Sequence[str]) -> None:
  """metrics.json, per_image.csv (s1_path, class, metrics; csv-quoted) and grid.png (SAR | generated | target)."""
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  with open(directory / "per_image.csv", "w", newline="") as file:
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(["s1_path", "class", *metrics.METRICS])
    for i, (name, label) in enumerate(zip(names, labels)):
      writer.writerow([name, label, *(f"{scores.model[m][i]:.6f}" for m in metrics.METRICS)])
  if scores.grid_rows:
    Image.fromarray(pair_grid(scores.grid_rows)).save(directory / "grid.png")


def write_tensorboard(workdir: pathlib.Path, result: dict) -> None:
  """Overall metrics as TensorBoard scalars `eval_<split>/<metric>` at the checkpoint's step."""
  with SummaryWriter(str(workdir / "tensorboard")) as writer:
    for name, value in result["overall"].items():
      writer.add_scalar(f"eval_{result['split']}/{name}", value["mean"], result["step"])


def format_table(result: dict) -> str:
  """Rows per class and overall (mean ± std), then the floors' overall rows."""
  header = f"{'':<22}{'n':>5}" + "".join(f"{m.upper():>18}" for m in metrics.METRICS)
  rows = [f"step {result['step']}  split {result['split']}  mode {result['mode']}", header]

  def row(name: str, entry: dict) -> str:
    return f"{name:<22}{entry['n']:>5}" + "".join(
        f"{entry[m]['mean']:>10.4f} ± {entry[m]['std']:<6.4f}" for m in metrics.METRICS)

  rows += [row(label, entry) for label, entry in result["per_class"].items()]
  rows.append(row("overall", {"n": result["n"], **result["overall"]}))
  for name, floor in result["floors"].items():
    rows.append(row(f"floor: {name}", {"n": floor["n"], **floor["overall"]}))
  return "\n".join(rows)
