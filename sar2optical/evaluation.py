"""Scores a workdir's checkpoints on a split: per image, per class and overall, written as JSON."""

import json
import pathlib
import time
from collections.abc import Sequence

import jax
import numpy as np
from absl import logging

from sar2optical import checkpoint, metrics
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import pipeline
from sar2optical.errors import DataError
from sar2optical.inference import TrainedGenerator, load_generator


def parse_steps(steps: str, available: Sequence[int]) -> list[int]:
  """'latest', 'all' or 'N[,M...]' → checkpoint steps (checked against `available` on restore)."""
  if steps == "all":
    return list(available)
  if steps == "latest":
    return list(available[-1:])
  try:
    return [int(s) for s in steps.split(",")]
  except ValueError:
    raise DataError(f"--steps: expected latest, all or N[,M...], got {steps!r}") from None


def score(generator: TrainedGenerator, root: pathlib.Path, pairs: Sequence[pairs_lib.Pair],
          batch_size: int) -> dict[str, np.ndarray]:
  """Per-image metrics of `generator` on `pairs`, in their order."""
  compute = jax.jit(lambda sar, optical: metrics.image_metrics(
      generator.pixels.to_unit(generator(sar)), generator.pixels.to_unit(generator.pixels.to_model(optical))))
  per_image = {name: np.zeros(len(pairs), np.float64) for name in metrics.METRICS}
  batches = pipeline.eval_batches(root, pairs, image_size=generator.image_size,
                                  in_channels=generator.in_channels, batch_size=batch_size)
  for batch in batches:
    values = jax.device_get(compute(batch["sar"], batch["optical"]))
    valid = batch["valid"]
    for name in metrics.METRICS:
      per_image[name][batch["index"][valid]] = values[name][valid]
  return per_image


def evaluate(workdir: str | pathlib.Path, *, data_root: str | None = None, split: str = "test",
             steps: str = "latest", batch_size: int = 8) -> list[dict]:
  """Evaluates each requested checkpoint; writes `WORKDIR/eval/step_N/{metrics.json,per_image.csv}`."""
  workdir = pathlib.Path(workdir)
  available = checkpoint.Checkpoints(workdir, create=False).all_steps()
  results = []
  for step in parse_steps(steps, available):
    generator = load_generator(workdir, step)
    root = pathlib.Path(data_root or generator.config.data.root).expanduser().resolve()
    all_pairs = pairs_lib.find_pairs(root)
    eval_pairs = pairs_lib.select(all_pairs, pairs_lib.read_split(workdir / "split.json"), split)
    if not eval_pairs:
      raise DataError(f"--split={split}: no pairs of {root} in that split of {workdir / 'split.json'}")
    start = time.perf_counter()
    per_image = score(generator, root, eval_pairs, batch_size)
    seconds = time.perf_counter() - start
    result = {"step": generator.step, "mode": "eval", "split": split, "data_root": str(root),
              **metrics.aggregate(per_image, [p.label for p in eval_pairs]),
              "images_per_second": len(eval_pairs) / seconds, "config": generator.config.to_dict()}
    write_outputs(workdir / "eval" / f"step_{generator.step}", result, per_image, eval_pairs)
    logging.info("Evaluated step %d on %d %s pairs in %.1f s (%.1f images/s)", generator.step, len(eval_pairs),
                 split, seconds, result["images_per_second"])
    results.append(result)
  return results


def write_outputs(directory: pathlib.Path, result: dict, per_image: dict[str, np.ndarray],
                  eval_pairs: Sequence[pairs_lib.Pair]) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  lines = ["s1_path,class," + ",".join(metrics.METRICS)]
  for i, pair in enumerate(eval_pairs):
    lines.append(f"{pair.s1},{pair.label}," + ",".join(f"{per_image[m][i]:.6f}" for m in metrics.METRICS))
  (directory / "per_image.csv").write_text("\n".join(lines) + "\n")


def format_table(result: dict) -> str:
  """A plain-text table: one row per class and one overall, each metric as mean ± std."""
  header = f"{'class':<14}{'n':>5}" + "".join(f"{m.upper():>18}" for m in metrics.METRICS)
  rows = [f"step {result['step']}  split {result['split']}  mode {result['mode']}", header]

  def row(name: str, entry: dict) -> str:
    return f"{name:<14}{entry['n']:>5}" + "".join(
        f"{entry[m]['mean']:>10.4f} ± {entry[m]['std']:<6.4f}" for m in metrics.METRICS)

  rows += [row(label, entry) for label, entry in result["per_class"].items()]
  rows.append(row("overall", {"n": result["n"], **result["overall"]}))
  return "\n".join(rows)
