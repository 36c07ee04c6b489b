"""Scores generators on a split: per image, per class and overall, beside the floors, as JSON/CSV/PNG."""

import dataclasses
import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from PIL import Image
from tensorboardX import SummaryWriter

from sar2optical import checkpoint, metrics, paths, training
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import pipeline, sources
from sar2optical.errors import ConfigError, DataError
from sar2optical.inference import Mode, load_generator
from sar2optical.metric_writer import pair_grid

FLOORS = ("mean_colour", "other_target")


@dataclasses.dataclass
class Scores:
  """Per-image metrics of the model and of the floors, and the first pairs as grid rows."""
  model: dict[str, np.ndarray]
  floors: dict[str, dict[str, np.ndarray]]
  grid_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


class Evaluator:
  """Jit-compiled scoring of a generator in an explicit mode; compiled once, reused for every call.

  `eval` mode uses running BatchNorm statistics and no dropout; `train` mode uses batch statistics
  and dropout (as the pix2pix authors test) with a fixed key, and needs batches of at least 2 (the
  last batch is padded with repeats of its last pair, which are not scored).
  """

  def __init__(self, model: training.Pix2Pix, *, image_size: int, in_channels: int, batch_size: int,
               mode: Mode = "eval", seed: int = 0):
    if mode == "train" and batch_size < 2:
      raise ConfigError(f"--batch_size: train-mode inference needs at least 2 (BatchNorm batch statistics), "
                        f"got {batch_size}")
    self.model, self.mode, self.batch_size, self.seed = model, mode, batch_size, seed
    self.image_size, self.in_channels = image_size, in_channels
    pixels = model.pixels
    dropout_rng = jax.random.PRNGKey(seed)

    def score_model(g_params, g_stats, sar, optical):
      fake = training.generate(model, g_params, g_stats, sar, train=mode == "train", dropout_rng=dropout_rng)
      return metrics.image_metrics(pixels.to_unit(fake), self._unit(optical)), fake

    def score_floors(optical, other_optical, mean_colour):
      target = self._unit(optical)
      return {"mean_colour": metrics.image_metrics(jnp.broadcast_to(mean_colour, target.shape), target),
              "other_target": metrics.image_metrics(self._unit(other_optical), target)}

    self._score_model = jax.jit(score_model)
    self._score_floors = jax.jit(score_floors)

  def _unit(self, optical: jax.Array) -> jax.Array:
    return self.model.pixels.to_unit(self.model.pixels.to_model(optical))

  def _batches(self, source: sources.PairSource):
    return pipeline.eval_batches(source, image_size=self.image_size, in_channels=self.in_channels,
                                 batch_size=self.batch_size)

  def score(self, g_params: Any, g_stats: Any, source: sources.PairSource, *, mean_colour: np.ndarray | None = None,
            grid_pairs: int = 0, progress_label: str = "") -> Scores:
    """Per-image metrics on `source` (in order); floors too when `mean_colour` is given (needs ≥ 2 pairs)."""
    n = len(source)
    model_values = {name: np.zeros(n) for name in metrics.METRICS}
    floor_values = {floor: {name: np.zeros(n) for name in metrics.METRICS} for floor in FLOORS}
    with_floors = mean_colour is not None and n >= 2
    others = iter(self._batches(_Permuted(source, metrics.derangement(n, self.seed)))) if with_floors else None
    grid_rows, done, start, last_report = [], 0, time.perf_counter(), time.perf_counter()
    for batch in self._batches(source):
      values, fake = self._score_model(g_params, g_stats, batch["sar"], batch["optical"])
      values = jax.device_get(values)
      valid, index = batch["valid"], batch["index"][batch["valid"]]
      for name in metrics.METRICS:
        model_values[name][index] = values[name][valid]
      if with_floors:
        floors = jax.device_get(self._score_floors(batch["optical"], next(others)["optical"],
                                                   jnp.asarray(mean_colour, jnp.float32)))
        for floor in FLOORS:
          for name in metrics.METRICS:
            floor_values[floor][name][index] = floors[floor][name][valid]
      for i in np.flatnonzero(valid)[:max(grid_pairs - len(grid_rows), 0)]:
        grid_rows.append((batch["sar"][i], self.model.pixels.to_uint8(fake[i]), batch["optical"][i]))
      done += int(valid.sum())
      if progress_label and time.perf_counter() - last_report > 10:
        rate = done / (time.perf_counter() - start)
        logging.info("%s: %d/%d images, %.1f images/s, ETA %.0f s", progress_label, done, n, rate, (n - done) / rate)
        last_report = time.perf_counter()
    return Scores(model_values, floor_values if with_floors else {}, grid_rows)

  def mean_colour(self, source: sources.PairSource) -> np.ndarray:
    """Mean RGB in [0, 1] over every pixel of the source's optical images (at the model's size)."""
    total, count = np.zeros(3), 0
    for batch in self._batches(source):
      optical = batch["optical"][batch["valid"]].astype(np.float64) / 255.0
      total += optical.sum(axis=(0, 1, 2))
      count += optical.shape[0] * optical.shape[1] * optical.shape[2]
    return total / count


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
    raise ConfigError(f"--steps: expected latest, all or N[,M...], got {steps!r}") from None


@dataclasses.dataclass(frozen=True)
class _Permuted:
  """`source` read in another order (for the other-target floor)."""
  source: sources.PairSource
  order: np.ndarray

  @property
  def description(self) -> str:
    return self.source.description

  def __len__(self) -> int:
    return len(self.order)

  def __getitem__(self, index: int) -> Any:
    return self.source[int(self.order[index])]

  def decode(self, record: Any) -> dict[str, np.ndarray]:
    return self.source.decode(record)


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


def split_sources(workdir: pathlib.Path, split: str, *, data_source: str, data_root: str, tfds_data_dir: str,
                  tfds_config: str) -> tuple[sources.PairSource, sources.PairSource | None]:
  """The pairs to score and the training pairs (for the mean colour; None if not found there).

  `data_source="folder"`: a folder (`data_root`, Kaggle layout or flat) split by WORKDIR/split.json
  (`all`: every pair); "tfds": the splits of the sen1_2 build in `tfds_data_dir`.
  """
  if data_source == "tfds":
    if split == "all":
      raise ConfigError("--split=all: a TFDS build has the splits train, val and test; name one")
    return (sources.TfdsSource(split, data_dir=tfds_data_dir, config=tfds_config),
            sources.TfdsSource("train", data_dir=tfds_data_dir, config=tfds_config))
  root = pathlib.Path(data_root).expanduser().resolve()
  all_pairs = pairs_lib.find_pairs(root)
  split_file = pairs_lib.read_split(workdir / "split.json")
  eval_pairs = pairs_lib.select(all_pairs, split_file, split)
  if not eval_pairs:
    raise DataError(f"--split={split}: no pairs of {root} in that split of {workdir / 'split.json'}")
  try:
    train_source = sources.FolderSource(root, pairs_lib.select(all_pairs, split_file, "train"))
  except DataError:
    train_source = None
  return sources.FolderSource(root, eval_pairs), train_source if train_source and len(train_source) else None


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
    eval_source, train_source = split_sources(
        workdir, split, data_source=data_source, data_root=data_root or generator.config.data.root,
        tfds_data_dir=tfds_data_dir, tfds_config=tfds_config)
    evaluator = Evaluator(generator.model, image_size=generator.image_size, in_channels=generator.in_channels,
                          batch_size=batch_size, mode=mode, seed=generator.config.seed)
    mean_colour, colour_source = training_mean_colour(evaluator, workdir, train_source, eval_source)
    start = time.perf_counter()
    scores = evaluator.score(generator.g_params, generator.g_stats, eval_source, mean_colour=mean_colour,
                             grid_pairs=grid_pairs, progress_label=f"step {generator.step}")
    seconds = time.perf_counter() - start
    names, labels = zip(*(eval_source.name_and_label(i) for i in range(len(eval_source))))
    result = {"step": generator.step, "mode": mode, "split": split,
              **metrics.aggregate(scores.model, labels),
              "floors": {name: {**metrics.aggregate(values, labels), **({"mean_colour_rgb": mean_colour.tolist(),
                                                                          "source": colour_source}
                                                                         if name == "mean_colour" else {})}
                         for name, values in scores.floors.items()},
              "batch_size": batch_size, "data": eval_source.description,
              "images_per_second": len(eval_source) / seconds, "config": generator.config.to_dict()}
    directory = output_root / f"step_{generator.step}"
    write_outputs(directory, result, scores, names, labels)
    write_tensorboard(workdir, result)
    logging.info("Evaluated step %d on %d %s pairs in %.1f s (%.1f images/s); outputs in %s", generator.step,
                 len(eval_source), split, seconds, result["images_per_second"], directory)
    results.append(result)
  return results


def write_outputs(directory: pathlib.Path, result: dict, scores: Scores, names: Sequence[str],
                  labels: Sequence[str]) -> None:
  """metrics.json, per_image.csv (s1_path, class, metrics) and grid.png (SAR | generated | target)."""
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  lines = ["s1_path,class," + ",".join(metrics.METRICS)]
  for i, (name, label) in enumerate(zip(names, labels)):
    lines.append(f"{name},{label}," + ",".join(f"{scores.model[m][i]:.6f}" for m in metrics.METRICS))
  (directory / "per_image.csv").write_text("\n".join(lines) + "\n")
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
