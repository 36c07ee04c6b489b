"""The training loop behind `train.py`: data, state (fresh or resumed), then steps and periodic actions.

One step at a time: the jit step on the next global batch, then each periodic action of `actions`
(progress log, sample grids, validation, checkpointing), then the stop request, if any, ends the
run after its checkpoint. Global JAX settings (the compilation cache) are the entry script's.
"""

import contextlib
import pathlib

import jax
import ml_collections
import numpy as np
from absl import logging

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import config_from_metadata, write_config
from sar2optical.configs import fields
from sar2optical.core import storage
from sar2optical.core.errors import DataError
from sar2optical.data import pipeline, resolve, sources
from sar2optical.data.augment import Augmentation
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import actions, lock, stop_signals
from sar2optical.training.init_from import initialise_from
from sar2optical.training.log import MetricWriter
from sar2optical.training.mesh import global_batch, make_mesh
from sar2optical.training.profile import TraceWindow
from sar2optical.training.recipe import Recipe, make_recipe
from sar2optical.training.state import TrainState, abstract_state, create_state
from sar2optical.training.step import jit_train_step

#: Fields a saved data position depends on: when one differs on resume, the data order restarts at the step.
DATA_FIELDS = ("seed", "batch_size", "image_size", "model.in_channels", "data.root", "data.split_file", "data.source",
               "data.tfds_data_dir", "data.tfds_config", "data.augment", "data.vflip", "data.rot90")
#: `model.init_output_mean`'s colour is that of at most this many training pairs, a seeded sample.
MEAN_COLOUR_PAIRS = 1000


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> TrainState:
  """Trains until `config.num_train_steps`, resuming from the latest checkpoint in `workdir`.

  Raises TrainingDiverged when a loss or gradient becomes NaN or Inf (nothing from that step on is
  saved), StoppedBySignal after saving the current step on SIGTERM or SIGINT, WorkdirInUse when
  another run trains in `workdir` (process 0 holds `workdir_lock` for the run) and DiskFull when a
  write fails for want of space (the checkpoints committed before stay).
  """
  mesh = make_mesh()
  fields.validate(config, num_data_shards=mesh.size)
  workdir = storage.writable_directory(workdir, "the workdir")
  remedy = "free space there and run the same command again: it resumes from the last checkpoint"
  with storage.disk_full_reported(workdir, lambda: manager.latest_bytes(workdir), remedy), \
       lock.held(workdir) if jax.process_index() == 0 else contextlib.nullcontext(lock.Tenure()) as tenure:
    return _train(config, workdir, mesh, tenure)


def _train(config: ml_collections.ConfigDict, workdir: storage.Path, mesh: jax.sharding.Mesh,
           tenure: lock.Tenure) -> TrainState:
  """`train` in a checked workdir that this run holds (as long as `tenure` says so)."""
  run_data = resolve.resolve(config.data, workdir, seed=config.seed, record=True)
  train_source = run_data.source("train")
  val_source = run_data.source("val") if run_data.size("val") else None  # a build may have no val split
  augmentation = Augmentation.from_config(config.data)
  logging.info("Data: %s for training (split %s); augmentation %s; %d grain worker processes%s",
               train_source.description, workdir / resolve.SPLIT_FILE, augmentation, config.data.workers,
               "; bad records are skipped and counted" if config.data.skip_bad else "")
  if isinstance(train_source, sources.FolderSource):  # a TFDS record is read whole to name its class
    for name, source in (("train", train_source), ("val", val_source)):
      if source is not None:
        logging.info("Split %s: %s", name, resolve.composition(source))
  recipe = make_recipe(config, PixelSpec())
  data_iterator = pipeline.train_iterator(
      train_source, image_size=config.image_size, in_channels=config.model.in_channels,
      global_batch_size=config.batch_size, seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), augmentation=augmentation, workers=config.data.workers,
      skip_bad=config.data.skip_bad)
  data_layout = {**data_iterator.layout, "config": {name: fields.field(config, name) for name in DATA_FIELDS}}
  with contextlib.ExitStack() as cleanup:  # whatever happens, the checkpoints being written are completed
    cleanup.callback(data_iterator.close)
    checkpoints = manager.Checkpoints(workdir, keep=config.keep_checkpoints)
    cleanup.callback(checkpoints.close)
    cleanup.callback(checkpoints.wait)
    start_step = checkpoints.latest_step()
    if start_step is None:  # a converted workdir resumes from its step 0
      state, start_step = new_state(config, recipe, mesh, workdir, train_source), 0
    else:
      state = resume(config, recipe, mesh, checkpoints, start_step, data_iterator, data_layout)
    writer = cleanup.enter_context(contextlib.closing(MetricWriter(workdir)))
    stop_requested = cleanup.enter_context(stop_signals.stop_requests())
    trace = TraceWindow(config.profile_steps, config.profile_after_steps, start_step, workdir)
    cleanup.callback(trace.stop)
    loop = Loop(config, recipe, mesh, checkpoints, data_iterator, start_step, trace, tenure,
                actions.ProgressLog(config, writer, checkpoints, data_iterator, start_step),
                actions.SampleGrids(config, recipe, writer, val_source or train_source),
                actions.Validation.create(config, recipe, val_source, writer, checkpoints),
                actions.Checkpointing(config, recipe, checkpoints, data_iterator, data_layout))
    state = loop.run(state, stop_requested)
  logging.info("Done: step %d; checkpoints in %s", int(state.step), checkpoints.directory)
  return state


def new_state(config: ml_collections.ConfigDict, recipe: Recipe, mesh: jax.sharding.Mesh,
              workdir: storage.Path, train_source: sources.PairSource) -> TrainState:
  """A fresh state, with the networks of `config.init_from` if set, else G starting at the mean colour of
  `train_source` if the recipe says so; writes WORKDIR/config.json."""
  output_mean = None
  if recipe.init_output_mean and not config.init_from:
    output_mean, pairs = mean_colour(train_source, recipe.pixels, config.seed, config.data.skip_bad)
    logging.info("G starts at the mean colour of %d training pairs (config.model.init_output_mean): RGB %s in the "
                 "model range", pairs, np.array2string(output_mean, precision=4))
  logging.info("Initialising the networks and their optimizers (compiling the initialiser)…")
  state = create_state(recipe, mesh, config.seed, config.image_size, config.model.in_channels, output_mean)
  if config.init_from:
    state, source_step = initialise_from(config.init_from, state, config)
    logging.info("Starting from the networks at step %d of %s (config.init_from), with fresh optimizers",
                 source_step, config.init_from)
  if jax.process_index() == 0:
    write_config(workdir, config)
  return state


def mean_colour(source: sources.PairSource, pixels: PixelSpec, seed: int, skip_bad: bool) -> tuple[np.ndarray, int]:
  """(mean RGB of the stored optical images, in the model range; pairs read) over a sample of at most
  MEAN_COLOUR_PAIRS pairs of `source` drawn by `seed`: the same on every process.

  An undecodable pair raises its DataError, or with `skip_bad` is passed over.
  """
  sample = np.random.default_rng(seed).choice(len(source), min(len(source), MEAN_COLOUR_PAIRS), replace=False)
  means = []
  for index in sample:
    try:
      optical = source.decode(source[int(index)])["optical"]
    except DataError:
      if not skip_bad:
        raise
      continue
    means.append(optical.reshape(-1, 3).mean(axis=0, dtype=np.float64))
  if not means:
    raise DataError(f"no training pair of {source.description} can be decoded")
  return np.asarray(pixels.to_model(np.mean(means, axis=0))), len(means)


def resume(config: ml_collections.ConfigDict, recipe: Recipe, mesh: jax.sharding.Mesh,
           checkpoints: manager.Checkpoints, step: int, data_iterator: pipeline.TrainIterator,
           data_layout: dict) -> TrainState:
  """The state at `step`, resharded onto `mesh`, and the data position, when it was saved with `data_layout`.

  Raises ConfigError naming the fields when the checkpoint's networks differ from `config`'s;
  logs every other change of the config.
  """
  metadata = checkpoints.metadata(step)
  saved_config = config_from_metadata(metadata)
  fields.check_networks_fit(saved_config, config, f"the networks of the checkpoint at step {step} in "
                                   f"{checkpoints.directory} (resuming this workdir)")
  changed = fields.changes(saved_config, config)
  if changed:
    logging.info("Config changes since the checkpoint at step %d: %s", step,
                 "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items()))
  has_data_position = checkpoints.has_data_iterator(step)
  data_resumes = has_data_position and metadata.get("data_layout") == data_layout
  abstract = abstract_state(recipe, mesh, config.image_size, config.model.in_channels)
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


class Loop:
  """Steps `start_step + 1 … num_train_steps`, each followed by the periodic actions and the stop check."""

  def __init__(self, config: ml_collections.ConfigDict, recipe: Recipe, mesh: jax.sharding.Mesh,
               checkpoints: manager.Checkpoints, data_iterator: pipeline.TrainIterator, start_step: int,
               trace: TraceWindow, tenure: lock.Tenure, progress: actions.ProgressLog,
               samples: actions.SampleGrids, validation: actions.Validation | None,
               checkpointing: actions.Checkpointing):
    self.config, self.mesh, self.checkpoints, self.data_iterator = config, mesh, checkpoints, data_iterator
    self.start_step, self.train_step, self.trace = start_step, jit_train_step(recipe, mesh), trace
    self.tenure = tenure
    self.progress, self.samples, self.validation, self.checkpointing = progress, samples, validation, checkpointing

  def run(self, state: TrainState, stop_requested: stop_signals.StopRequested) -> TrainState:
    """The final state; raises StoppedBySignal once the step after a stop request is checkpointed."""
    num_steps = self.config.num_train_steps
    if self.start_step >= num_steps:
      logging.info("Nothing to train: the checkpoint is at step %d, config.num_train_steps is %d", self.start_step,
                   num_steps)
      return state
    for step in range(self.start_step + 1, num_steps + 1):
      self.trace.before_step(step)
      if step == self.start_step + 1:
        logging.info("Compiling the train step (the first step waits for it)…")
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, step_metrics = self.train_step(state, global_batch(next(self.data_iterator), self.mesh))
      self.trace.after_step(step, (state, step_metrics))
      self.progress(step, state, step_metrics)
      self.samples(step, state)
      stop = stop_requested(step)
      val_psnr = self.validation(step, state) if self.validation else None
      self.tenure.check(step)
      self.checkpointing(step, state, val_psnr=val_psnr, stop=stop)
      if stop and step < num_steps:
        self.checkpoints.wait()
        raise stop_signals.stopped(stop, step, num_steps, self.checkpoints.directory)
    return state
