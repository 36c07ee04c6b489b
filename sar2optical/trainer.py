"""The training loop behind `train.py`: split, state, data, steps, logs, checkpoints, resume."""

import contextlib
import dataclasses
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from sar2optical import checkpoint, configuration, evaluation, metrics, paths, training
from sar2optical.errors import StoppedBySignal, TrainingDiverged
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import pipeline, sources
from sar2optical.data.augment import Augmentation
from sar2optical.metric_writer import MetricWriter, pair_grid
from sar2optical.pixels import PixelSpec

SAMPLE_PAIRS = 4


def resolve_split(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                  pairs: Sequence[pairs_lib.Pair]) -> dict:
  """The run's split, kept in `WORKDIR/split.json` so eval and resumed runs use the same one.

  An explicit `data.split_file` wins; else an existing `WORKDIR/split.json`; else a seeded
  0.8/0.1/0.1 split by scene is made and written there.
  """
  split_path = workdir / "split.json"
  if config.data.split_file:
    split = pairs_lib.read_split(config.data.split_file)
  elif split_path.exists():
    return pairs_lib.read_split(split_path)
  else:
    split = pairs_lib.make_split(pairs, seed=config.seed)
  if jax.process_index() == 0:
    pairs_lib.write_split(split_path, split)
  return split


def format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


#: Fields a saved data position depends on: when one differs on resume, the data order restarts at the step.
DATA_FIELDS = ("seed", "batch_size", "image_size", "model.in_channels", "data.root", "data.split_file", "data.source",
               "data.tfds_data_dir", "data.tfds_config", "data.augment", "data.vflip", "data.rot90")


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[int], str | None]]:
  """Yields `requested(step)`: the name of a signal that asks the run to stop after `step`, else None.

  One process: SIGTERM (preemption) and SIGINT (Ctrl-C) set a flag that the loop reads between
  steps. Several processes: JAX's preemption service (started by jax.distributed.initialize)
  catches SIGTERM on any host and picks a step at which every process stops together.
  """
  if jax.process_count() > 1:
    yield lambda step: "SIGTERM" if multihost_utils.reached_preemption_sync_point(step) else None
    return
  if threading.current_thread() is not threading.main_thread():  # Python handles signals there only
    yield lambda step: None
    return
  received: list[str] = []
  handled = (signal.SIGTERM, signal.SIGINT)
  previous = {number: signal.signal(number, lambda number, frame: received.append(signal.Signals(number).name))
              for number in handled}
  try:
    yield lambda step: received[0] if received else None
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)


def local_copy(tree: Any) -> Any:
  """This process's copy of replicated global arrays, to run single-process code (samples, validation) on."""
  return jax.tree.map(lambda leaf: leaf.addressable_data(0), tree)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> training.TrainState:
  """Trains until `config.num_train_steps`, resuming from the latest checkpoint in `workdir`.

  Raises TrainingDiverged when a loss or gradient becomes NaN or Inf (nothing from that step on is
  saved) and StoppedBySignal after saving the current step on SIGTERM or SIGINT.
  """
  mesh = training.make_mesh()
  configuration.validate(config, num_data_shards=mesh.size)
  workdir = paths.writable_directory(workdir, "the workdir")
  # A resumed run loads its compiled step from here instead of compiling it again.
  jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  train_source, sample_source, split = training_sources(config, workdir)
  augmentation = Augmentation.from_config(config.data)
  logging.info("Data: %s for training (split %s); augmentation %s; %d grain worker processes%s",
               train_source.description, workdir / "split.json", augmentation, config.data.workers,
               "; bad records are skipped and counted" if config.data.skip_bad else "")

  pixels = PixelSpec()
  model = training.make_pix2pix(config, pixels)
  data_iterator = pipeline.train_iterator(
      train_source, image_size=config.image_size, in_channels=config.model.in_channels,
      global_batch_size=config.batch_size, seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), augmentation=augmentation, workers=config.data.workers,
      skip_bad=config.data.skip_bad)
  data_layout = {**data_iterator.layout, "config": {name: configuration.field(config, name) for name in DATA_FIELDS}}
  with contextlib.ExitStack() as cleanup:  # whatever happens, the checkpoints being written are completed
    cleanup.callback(data_iterator.close)
    checkpoints = checkpoint.Checkpoints(workdir, keep=config.keep_checkpoints)
    cleanup.callback(checkpoints.close)
    cleanup.callback(checkpoints.wait)
    start_step = checkpoints.latest_step()
    if start_step is None:
      state = new_state(config, model, mesh, workdir)
      start_step = 0
    else:
      state = resume(config, model, mesh, checkpoints, start_step, data_iterator, data_layout)
    writer = cleanup.enter_context(contextlib.closing(MetricWriter(workdir)))
    run = _Run(config, model, pixels, checkpoints, data_iterator, data_layout, writer)
    stop_requested = cleanup.enter_context(stop_requests())
    state = run.steps(state, mesh, start_step, stop_requested, Validation.create(config, model, split),
                      sample_source)
  logging.info("Done: step %d; checkpoints in %s", int(state.step), checkpoints.directory)
  return state


def new_state(config: ml_collections.ConfigDict, model: training.Pix2Pix, mesh: jax.sharding.Mesh,
              workdir: pathlib.Path) -> training.TrainState:
  """A fresh state, with the networks of `config.init_from` if set; writes WORKDIR/config.json."""
  state = training.create_state(model, mesh, config.seed, config.image_size, config.model.in_channels)
  if config.init_from:
    state, source_step = checkpoint.initialise_from(config.init_from, state, config)
    logging.info("Starting from the networks at step %d of %s (config.init_from), with fresh optimizers",
                 source_step, config.init_from)
  if jax.process_index() == 0:
    checkpoint.write_config(workdir, config)
  return state


def resume(config: ml_collections.ConfigDict, model: training.Pix2Pix, mesh: jax.sharding.Mesh,
           checkpoints: checkpoint.Checkpoints, step: int, data_iterator: pipeline.TrainIterator,
           data_layout: dict) -> training.TrainState:
  """The state at `step`, resharded onto `mesh`, and the data position, when it was saved with `data_layout`.

  Raises ConfigError naming the fields when the checkpoint's networks differ from `config`'s;
  logs every other change of the config.
  """
  metadata = checkpoints.metadata(step)
  saved_config = checkpoint.config_from_metadata(metadata)
  configuration.check_networks_fit(saved_config, config, f"the networks of the checkpoint at step {step} in "
                                   f"{checkpoints.directory} (resuming this workdir)")
  changed = configuration.changes(saved_config, config)
  if changed:
    logging.info("Config changes since the checkpoint at step %d: %s", step,
                 "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items()))
  has_data_position = checkpoints.has_data_iterator(step)
  data_resumes = has_data_position and metadata.get("data_layout") == data_layout
  abstract = training.abstract_state(model, mesh, config.image_size, config.model.in_channels)
  state = checkpoints.restore(step, abstract, data_iterator if data_resumes else None)
  logging.info("Resuming from the checkpoint at step %d in %s%s", step, checkpoints.directory,
               " (config.init_from applies to new runs only)" if config.init_from else "")
  if not has_data_position:
    logging.info("That checkpoint holds no data iterator position (a converted model): the data start afresh")
  elif not data_resumes:
    data_iterator.restart_at(step)
    logging.info("Data: the checkpoint's data position was saved with %s, this run reads with %s: the data order "
                 "restarts at global step %d, with the batches an uninterrupted run reads from there",
                 metadata.get("data_layout"), data_layout, step)
  return state


@dataclasses.dataclass
class _Run:
  """The loop of one training process: steps, logs, samples, validation, checkpoints and stops."""
  config: ml_collections.ConfigDict
  model: training.Pix2Pix
  pixels: PixelSpec
  checkpoints: checkpoint.Checkpoints
  data_iterator: pipeline.TrainIterator
  data_layout: dict
  writer: MetricWriter

  def save(self, state: training.TrainState, step: int, val_psnr: float | None = None) -> None:
    self.check_finite(state)
    metadata = {**checkpoint.make_metadata(self.config, self.pixels, step), "data_layout": self.data_layout}
    self.checkpoints.save(step, state, self.data_iterator, metadata, val_psnr=val_psnr)

  def check_finite(self, state: training.TrainState) -> None:
    """TrainingDiverged, naming the first bad step, once a loss or gradient has been NaN or Inf."""
    bad_step = int(state.nonfinite_step)
    if bad_step:
      self.checkpoints.wait()
      last_good = self.checkpoints.latest_step()
      kept = (f"the last good checkpoint, step {last_good}, is in {self.checkpoints.directory}"
              if last_good is not None else "no checkpoint was written")
      raise TrainingDiverged(f"training diverged: a loss or gradient was NaN or Inf at step {bad_step}; nothing from "
                             f"that step on was saved and {kept} (lower config.optimizer.learning_rate, or check "
                             "the data)")

  def steps(self, state: training.TrainState, mesh: jax.sharding.Mesh, start_step: int,
            stop_requested: Callable[[int], str | None], validation: "Validation | None",
            sample_source: sources.PairSource) -> training.TrainState:
    """Runs steps start_step + 1 … num_train_steps; returns the final state."""
    config = self.config
    num_steps = config.num_train_steps
    if start_step >= num_steps:
      logging.info("Nothing to train: the checkpoint is at step %d, config.num_train_steps is %d", start_step,
                   num_steps)
      return state
    train_step = training.jit_train_step(self.model, mesh)
    generate = training.jit_generate(self.model)
    samples = pipeline.first_pairs(sample_source, SAMPLE_PAIRS, image_size=config.image_size,
                                   in_channels=config.model.in_channels)
    pending: list[dict[str, jax.Array]] = []
    window_start, window_steps = time.perf_counter(), 0
    for step in range(start_step + 1, num_steps + 1):
      batch = training.global_batch(next(self.data_iterator), mesh)
      state, metrics = train_step(state, batch)
      pending.append(metrics)
      if step == start_step + 1:
        jax.block_until_ready(state.step)
        logging.info("Compiled and ran the first step in %.1f s", time.perf_counter() - window_start)
        window_start = time.perf_counter()
      else:
        window_steps += 1
      if step % config.log_every_steps == 0 or step == num_steps:
        self.check_finite(state)
        self.log(step, pending, window_steps / (time.perf_counter() - window_start) if window_steps else float("nan"))
        pending, window_start, window_steps = [], time.perf_counter(), 0
      if self.writer.enabled and (step % config.sample_every_steps == 0 or step == num_steps):
        fake = generate(local_copy(state.g_params), local_copy(state.g_stats), samples["sar"])
        self.writer.write_image(step, "samples", pair_grid(zip(samples["sar"], self.pixels.to_uint8(fake),
                                                              samples["optical"])))
      stop = stop_requested(step)
      if validation and step % config.eval_every_steps == 0:
        self.check_finite(state)
        overall = validation.run(state, step)
        self.writer.write_scalars(step, {f"val_{name}": value["mean"] for name, value in overall.items()})
        self.save(state, step, val_psnr=overall["psnr"]["mean"])
      elif step % config.checkpoint_every_steps == 0 or step == num_steps or stop:
        self.save(state, step)
      if stop and step < num_steps:
        self.checkpoints.wait()
        raise StoppedBySignal(f"Stopped by {stop} after step {step} of {num_steps}: the checkpoint is in "
                              f"{self.checkpoints.directory / str(step)}; run the same command to resume.",
                              128 + signal.Signals[stop].value)
    return state

  def log(self, step: int, pending: Sequence[dict[str, jax.Array]], steps_per_second: float) -> None:
    """Writes the means of the metrics of `pending` steps, with speed and ETA, to the log and the writer."""
    config = self.config
    on_host = jax.device_get(list(pending))
    means = {name: float(np.mean([metrics[name] for metrics in on_host])) for name in on_host[0]}
    if steps_per_second > 0:  # unknown in a window holding only the compiling step
      means.update(steps_per_second=steps_per_second, images_per_second=steps_per_second * config.batch_size)
    means["learning_rate"] = float(training.learning_rate_schedule(config)(step - 1))
    self.writer.write_scalars(step, means)
    eta = format_duration((config.num_train_steps - step) / steps_per_second) if steps_per_second > 0 else "?"
    logging.info("step %d/%d  loss_D %.3f  loss_G %.3f (GAN %.3f, L1 %.4f)  %.2f steps/s  %.1f img/s  ETA %s",
                 step, config.num_train_steps, means["loss_D"], means["loss_G"], means["loss_G_GAN"],
                 means["loss_G_L1"], steps_per_second, steps_per_second * config.batch_size, eta)
    if config.data.skip_bad:
      logging.info("Data: %d bad records skipped so far by this process (config.data.skip_bad)",
                   self.data_iterator.skipped)


def training_sources(config: ml_collections.ConfigDict, workdir: pathlib.Path
                     ) -> tuple[sources.PairSource, sources.PairSource, dict]:
  """The training pairs, the few (validation if any) whose translations go into the sample grids, and the split.

  `data.source = "tfds"` reads the splits of a sen1_2 build and copies its split to
  `WORKDIR/split.json` (eval.py scores the same split on the folder); "folder" resolves the split
  as `resolve_split` says. Only process 0 writes the file; every process works from the same split.
  """
  if config.data.source == "tfds":
    if config.data.split_file:
      logging.warning("config.data.split_file is not used with data.source=tfds: the splits are the build's "
                      "(build with --split_file to choose them)")
    train = sources.TfdsSource("train", data_dir=config.data.tfds_data_dir, config=config.data.tfds_config)
    split = train.split_file
    if jax.process_index() == 0:
      pairs_lib.write_split(workdir / "split.json", split)
    has_val = bool(split["data"]["val"])
    samples = sources.TfdsSource("val", data_dir=config.data.tfds_data_dir,
                                 config=config.data.tfds_config) if has_val else train
    return train, samples, split
  root = pathlib.Path(config.data.root).expanduser().resolve()
  all_pairs = pairs_lib.find_pairs(root)
  split = resolve_split(config, workdir, all_pairs)
  train_pairs = pairs_lib.select(all_pairs, split, "train")
  val_pairs = pairs_lib.select(all_pairs, split, "val")
  return (sources.FolderSource(root, train_pairs), sources.FolderSource(root, (val_pairs or train_pairs)[:SAMPLE_PAIRS]),
          split)


@dataclasses.dataclass
class Validation:
  """Scores the validation split in eval mode during training (compiled once)."""
  evaluator: evaluation.Evaluator
  source: sources.FolderSource

  @classmethod
  def create(cls, config: ml_collections.ConfigDict, model: training.Pix2Pix, split: dict) -> "Validation | None":
    """None when `eval_every_steps` is 0, or (said in the log) when there is no validation pair in a folder."""
    if not config.eval_every_steps:
      return None
    if not config.data.root:
      logging.info("Validation: off (it reads the validation split from a folder; set config.data.root)")
      return None
    root = pathlib.Path(config.data.root).expanduser().resolve()
    source = sources.FolderSource(root, pairs_lib.select(pairs_lib.find_pairs(root), split, "val"))
    if not len(source):
      logging.info("Validation: off (the validation split is empty)")
      return None
    evaluator = evaluation.Evaluator(model, image_size=config.image_size, in_channels=config.model.in_channels,
                                     batch_size=config.eval_batch_size, seed=config.seed)
    logging.info("Validation: %d pairs every %d steps; the best checkpoint by PSNR is kept", len(source),
                 config.eval_every_steps)
    return cls(evaluator, source)

  def run(self, state: training.TrainState, step: int) -> dict[str, dict[str, float]]:
    """Every process scores the whole split on its own copy of G (the same numbers everywhere)."""
    scores = self.evaluator.score(local_copy(state.g_params), local_copy(state.g_stats), self.source)
    overall = metrics.summarize(scores.model)
    logging.info("step %d validation (%d pairs): PSNR %.3f  SSIM %.4f  MAE %.4f  RMSE %.4f", step, len(self.source),
                 *(overall[m]["mean"] for m in metrics.METRICS))
    return overall
