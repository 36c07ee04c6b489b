"""The periodic actions of the training loop, one small class each, called after every step.

  ProgressLog    every `log_every_steps` and at the end: mean losses, steps/s, images/s and ETA,
                 to the log, metrics.jsonl and TensorBoard; the compile time of the first step
  SampleGrids    every `sample_every_steps` and at the end: SAR | generated | target of a few pairs
  Validation     every `eval_every_steps`: the validation split scored in eval mode, as eval.py scores it
  (both with the generator eval and predict use: G's EMA when the run keeps one)
  Checkpointing  every `checkpoint_every_steps`, after each validation (competing for best), at the
                 end, and when a stop was requested

A few classes of our own rather than clu's periodic actions: ours hand results on (validation's
PSNR decides the best checkpoint, a stop request forces a save), and each checks the NaN/Inf flag
before it trusts the state, which clu's `(step, time)` callbacks do not model.
"""

import dataclasses
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import make_metadata
from sar2optical.core.errors import TrainingDiverged
from sar2optical.data import pipeline, sources
from sar2optical.inference import tile_engine
from sar2optical.inference.restore import TrainedGenerator
from sar2optical.metrics import distortion
from sar2optical.metrics.scoring import Evaluator
from sar2optical.model.generator import jit_forward
from sar2optical.training.log import MetricWriter, pair_grid
from sar2optical.training.mesh import local_copy
from sar2optical.training.recipe import Recipe, learning_rate_schedule
from sar2optical.training.state import TrainState, inference_variables

SAMPLE_PAIRS = 4


def due(step: int, every: int, num_steps: int) -> bool:
  """Whether an action of cadence `every` acts after `step`: on its multiples and on the last step."""
  return step % every == 0 or step == num_steps


def check_finite(state: TrainState, checkpoints: manager.Checkpoints) -> None:
  """TrainingDiverged, naming the first bad step and the last good checkpoint, once a loss or gradient was NaN/Inf."""
  bad_step = int(state.nonfinite_step)
  if bad_step:
    checkpoints.wait()
    last_good = checkpoints.latest_step()
    kept = (f"the last good checkpoint, step {last_good}, is in {checkpoints.directory}"
            if last_good is not None else "no checkpoint was written")
    raise TrainingDiverged(f"training diverged: a loss or gradient was NaN or Inf at step {bad_step}; nothing from "
                           f"that step on was saved and {kept} (lower config.optimizer.learning_rate, or check the "
                           "data)")


def format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressLog:
  """Collects each step's metrics on the device; every `log_every_steps` fetches and logs their means."""

  def __init__(self, config: ml_collections.ConfigDict, writer: MetricWriter, checkpoints: manager.Checkpoints,
               data_iterator: pipeline.TrainIterator, start_step: int):
    self.config, self.writer, self.checkpoints, self.data_iterator = config, writer, checkpoints, data_iterator
    self.start_step = start_step
    self.pending: list[dict[str, jax.Array]] = []
    self.window_start, self.window_steps = time.perf_counter(), 0

  def __call__(self, step: int, state: TrainState, step_metrics: dict[str, jax.Array]) -> None:
    self.pending.append(step_metrics)
    if step == self.start_step + 1:  # the compiling step stays out of the speed window
      jax.block_until_ready(state.step)
      logging.info("Compiled and ran the first step in %.1f s", time.perf_counter() - self.window_start)
      self.window_start = time.perf_counter()
    else:
      self.window_steps += 1
    if due(step, self.config.log_every_steps, self.config.num_train_steps):
      check_finite(state, self.checkpoints)
      elapsed = time.perf_counter() - self.window_start
      self.write(step, self.pending, self.window_steps / elapsed if self.window_steps else float("nan"))
      self.pending, self.window_start, self.window_steps = [], time.perf_counter(), 0

  def write(self, step: int, pending: Sequence[dict[str, jax.Array]], steps_per_second: float) -> None:
    """The means of `pending` steps' metrics, with speed and ETA, to the log and the writer."""
    config = self.config
    on_host = jax.device_get(list(pending))
    means = {name: float(np.mean([values[name] for values in on_host])) for name in on_host[0]}
    if steps_per_second > 0:  # unknown in a window holding only the compiling step
      means.update(steps_per_second=steps_per_second, images_per_second=steps_per_second * config.batch_size)
    means["learning_rate"] = float(learning_rate_schedule(config)(step - 1))
    self.writer.write_scalars(step, means)
    eta = format_duration((config.num_train_steps - step) / steps_per_second) if steps_per_second > 0 else "?"
    logging.info("step %d/%d  loss_D %.3f  loss_G %.3f (GAN %.3f, L1 %.4f)  %.2f steps/s  %.1f img/s  ETA %s",
                 step, config.num_train_steps, means["loss_D"], means["loss_G"], means["loss_G_GAN"],
                 means["loss_G_L1"], steps_per_second, steps_per_second * config.batch_size, eta)
    if config.data.skip_bad:
      logging.info("Data: %d bad records skipped so far by this process (config.data.skip_bad)",
                   self.data_iterator.skipped)


class SampleGrids:
  """Every `sample_every_steps`, the generator's translations of the first few pairs of `source` as a PNG grid."""

  def __init__(self, config: ml_collections.ConfigDict, recipe: Recipe, writer: MetricWriter,
               source: sources.PairSource):
    self.config, self.recipe, self.writer = config, recipe, writer
    self.generate = jit_forward(recipe.generator, recipe.pixels)
    self.samples = pipeline.first_pairs(source, SAMPLE_PAIRS, image_size=config.image_size,
                                        in_channels=config.model.in_channels,
                                        crop=config.data.fit == "crop") if writer.enabled else None
    self.labels = [source.name_and_label(index)[1] for index in range(min(SAMPLE_PAIRS, len(source)))]

  def __call__(self, step: int, state: TrainState) -> None:
    if self.samples is None or not due(step, self.config.sample_every_steps, self.config.num_train_steps):
      return
    sar, optical = self.samples["sar"], self.samples["optical"]
    fake = self.generate(*local_copy(inference_variables(state)), sar)
    self.writer.write_image(step, "samples", pair_grid(zip(sar, self.recipe.pixels.to_uint8(fake), optical),
                                                       self.labels))


@dataclasses.dataclass
class Validation:
  """Every `eval_every_steps`, the validation split scored in eval mode (compiled once) and logged.

  It scores as eval.py does (`tile_engine.scoring_translation`): a crop-fit model's pairs at their stored
  resolution, translated in predict.py's tiles, so the validation PSNR is eval's for the same generator.
  """
  every: int
  evaluator: Evaluator
  source: sources.PairSource
  writer: MetricWriter
  checkpoints: manager.Checkpoints

  @classmethod
  def create(cls, config: ml_collections.ConfigDict, recipe: Recipe, source: sources.PairSource | None,
             writer: MetricWriter, checkpoints: manager.Checkpoints) -> "Validation | None":
    """None when `eval_every_steps` is 0 or (said in the log) there is no validation pair."""
    if not config.eval_every_steps:
      return None
    if source is None or not len(source):
      logging.info("Validation: off (the validation split is empty)")
      return None
    if config.eval_every_steps > config.num_train_steps:
      logging.info("Validation: none in this run (every %d steps, and the run ends at step %d)",
                   config.eval_every_steps, config.num_train_steps)
      return None
    generator = TrainedGenerator(config, recipe.pixels, 0, recipe.generator, None, None)  # variables: each call's
    tiled = tile_engine.scoring_translation(generator, config.eval_batch_size)
    evaluator = Evaluator(recipe.generator, recipe.pixels, image_size=config.image_size, in_channels=config.model.in_channels,
                          batch_size=config.eval_batch_size, seed=config.seed, tiled=tiled)
    logging.info("Validation: %d pairs (%s) every %d steps; the best checkpoint by PSNR is kept", len(source),
                 source.description, config.eval_every_steps)
    return cls(config.eval_every_steps, evaluator, source, writer, checkpoints)

  def __call__(self, step: int, state: TrainState) -> float | None:
    """The validation PSNR after `step` when due, else None. Every process scores on its own copy of G."""
    if step % self.every:
      return None
    check_finite(state, self.checkpoints)
    scores = self.evaluator.score(*local_copy(inference_variables(state)), self.source)
    overall = distortion.summarize(scores.model)
    logging.info("step %d validation (%d pairs): PSNR %.3f  SSIM %.4f  MAE %.4f  RMSE %.4f", step, len(self.source),
                 *(overall[m]["mean"] for m in distortion.METRICS))
    self.writer.write_scalars(step, {f"val_{name}": value["mean"] for name, value in overall.items()})
    return overall["psnr"]["mean"]


@dataclasses.dataclass
class Checkpointing:
  """Saves the state with the config, pixel mapping (values and the data's pixel scale) and data position: on
  cadence, after validation, at the end and on a stop request; never a state whose NaN/Inf flag is set."""
  config: ml_collections.ConfigDict
  recipe: Recipe
  checkpoints: manager.Checkpoints
  data_iterator: pipeline.TrainIterator
  data_layout: dict

  def __call__(self, step: int, state: TrainState, *, val_psnr: float | None, stop: str | None) -> None:
    if val_psnr is None and not stop and not due(step, self.config.checkpoint_every_steps,
                                                 self.config.num_train_steps):
      return
    check_finite(state, self.checkpoints)
    metadata = {**make_metadata(self.config, self.recipe.pixels, step, self.data_iterator.pixel_scale),
                "data_layout": self.data_layout}
    self.checkpoints.save(step, state, self.data_iterator, metadata, val_psnr=val_psnr)
