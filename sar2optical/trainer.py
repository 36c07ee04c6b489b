"""The training loop behind `train.py`: split, state, data, steps, logs, checkpoints, resume."""

import dataclasses
import pathlib
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from sar2optical import checkpoint, configuration, evaluation, metrics, training
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
  pairs_lib.write_split(split_path, split)
  return split


def format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> training.TrainState:
  """Trains until `config.num_train_steps`, resuming from the latest checkpoint in `workdir`."""
  mesh = training.make_mesh()
  configuration.validate(config, num_data_shards=mesh.size)
  workdir = pathlib.Path(workdir).resolve()
  workdir.mkdir(parents=True, exist_ok=True)
  # A resumed run loads its compiled step from here instead of compiling it again.
  jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  train_source, sample_source = training_sources(config, workdir)
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
  checkpoints = checkpoint.Checkpoints(workdir, keep=config.keep_checkpoints)
  start_step = checkpoints.latest_step()
  if start_step is None:
    state = training.create_state(model, mesh, config.seed, config.image_size, config.model.in_channels)
    if config.init_from:
      state, source_step = checkpoint.initialise_from(config.init_from, state, config)
      logging.info("Starting from the networks at step %d of %s (config.init_from), with fresh optimizers",
                   source_step, config.init_from)
    start_step = 0
    if jax.process_index() == 0:
      checkpoint.write_config(workdir, config)
  else:
    abstract = training.abstract_state(model, mesh, config.image_size, config.model.in_channels)
    has_data_position = checkpoints.has_data_iterator(start_step)
    saved_data_layout = checkpoints.metadata(start_step).get("data_layout")
    data_resumes = has_data_position and saved_data_layout == data_iterator.layout
    state = checkpoints.restore(start_step, abstract, data_iterator if data_resumes else None)
    logging.info("Resuming from the checkpoint at step %d in %s%s", start_step, checkpoints.directory,
                 " (config.init_from applies to new runs only)" if config.init_from else "")
    if not has_data_position:
      logging.info("That checkpoint holds no data iterator position (a converted model): the data start afresh")
    elif not data_resumes:
      data_iterator.restart_at(start_step)
      logging.info("Data: the checkpoint's data position was saved with %s, this run reads with %s: the data order "
                   "restarts at global step %d, with the batches an uninterrupted run reads from there",
                   saved_data_layout, data_iterator.layout, start_step)
  train_step = training.jit_train_step(model, mesh)
  generate = training.jit_generate(model)
  validation = Validation.create(config, workdir, model)
  samples = pipeline.first_pairs(sample_source, SAMPLE_PAIRS, image_size=config.image_size,
                                 in_channels=config.model.in_channels)
  sample_sar, sample_optical = samples["sar"], samples["optical"]
  writer = MetricWriter(workdir)
  num_steps = config.num_train_steps
  pending: list[dict[str, jax.Array]] = []
  window_start, window_steps = time.perf_counter(), 0

  def save(step: int, val_psnr: float | None = None) -> None:
    metadata = {**checkpoint.make_metadata(config, pixels, step), "data_layout": data_iterator.layout}
    checkpoints.save(step, state, data_iterator, metadata, val_psnr=val_psnr)

  for step in range(start_step + 1, num_steps + 1):
    batch = training.global_batch(next(data_iterator), mesh)
    if step == start_step + 1:
      compile_start = time.perf_counter()
      state, metrics = train_step(state, batch)
      jax.block_until_ready(state.step)
      logging.info("Compiled and ran the first step in %.1f s", time.perf_counter() - compile_start)
      window_start = time.perf_counter()
    else:
      state, metrics = train_step(state, batch)
      window_steps += 1
    pending.append(metrics)
    if step % config.log_every_steps == 0 or step == num_steps:
      means = {k: float(v) for k, v in jax.device_get(jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *pending)).items()}
      pending = []
      elapsed = time.perf_counter() - window_start
      steps_per_second = window_steps / elapsed if window_steps and elapsed > 0 else float("nan")
      means.update(steps_per_second=steps_per_second, images_per_second=steps_per_second * config.batch_size,
                   learning_rate=float(training.learning_rate_schedule(config)(step - 1)))
      writer.write_scalars(step, means)
      eta = format_duration((num_steps - step) / steps_per_second) if steps_per_second > 0 else "?"
      logging.info("step %d/%d  loss_D %.3f  loss_G %.3f (GAN %.3f, L1 %.4f)  %.2f steps/s  %.1f img/s  ETA %s",
                   step, num_steps, means["loss_D"], means["loss_G"], means["loss_G_GAN"], means["loss_G_L1"],
                   steps_per_second, means["images_per_second"], eta)
      if config.data.skip_bad:
        logging.info("Data: %d bad records skipped so far by this process (config.data.skip_bad)",
                     data_iterator.skipped)
      window_start, window_steps = time.perf_counter(), 0
    if step % config.sample_every_steps == 0 or step == num_steps:
      fake = generate(state.g_params, state.g_stats, sample_sar)
      grid = pair_grid(zip(np.asarray(sample_sar), pixels.to_uint8(fake), np.asarray(sample_optical)))
      writer.write_image(step, "samples", grid)
    if validation and step % config.eval_every_steps == 0:
      overall = validation.run(state, step)
      writer.write_scalars(step, {f"val_{name}": value["mean"] for name, value in overall.items()})
      save(step, val_psnr=overall["psnr"]["mean"])
    elif step % config.checkpoint_every_steps == 0 or step == num_steps:
      save(step)
  checkpoints.wait()
  checkpoints.close()
  data_iterator.close()
  writer.close()
  logging.info("Done: step %d; checkpoints in %s", int(state.step), checkpoints.directory)
  return state


def training_sources(config: ml_collections.ConfigDict,
                     workdir: pathlib.Path) -> tuple[sources.PairSource, sources.PairSource]:
  """The training pairs and the few (validation if any) whose translations go into the sample grids.

  `data.source = "tfds"` reads the splits of a sen1_2 build and copies its split to
  `WORKDIR/split.json` (eval.py scores the same split on the folder); "folder" resolves the split
  as `resolve_split` says.
  """
  if config.data.source == "tfds":
    if config.data.split_file:
      logging.warning("config.data.split_file is not used with data.source=tfds: the splits are the build's "
                      "(build with --split_file to choose them)")
    train = sources.TfdsSource("train", data_dir=config.data.tfds_data_dir, config=config.data.tfds_config)
    pairs_lib.write_split(workdir / "split.json", train.split_file)
    has_val = bool(train.split_file["data"]["val"])
    samples = sources.TfdsSource("val", data_dir=config.data.tfds_data_dir,
                                 config=config.data.tfds_config) if has_val else train
    return train, samples
  root = pathlib.Path(config.data.root).expanduser().resolve()
  all_pairs = pairs_lib.find_pairs(root)
  split = resolve_split(config, workdir, all_pairs)
  train_pairs = pairs_lib.select(all_pairs, split, "train")
  sample_pairs = (pairs_lib.select(all_pairs, split, "val") or train_pairs)[:SAMPLE_PAIRS]
  return sources.FolderSource(root, train_pairs), sources.FolderSource(root, sample_pairs)


@dataclasses.dataclass
class Validation:
  """Scores the validation split in eval mode during training (compiled once)."""
  evaluator: evaluation.Evaluator
  source: sources.FolderSource

  @classmethod
  def create(cls, config: ml_collections.ConfigDict, workdir: pathlib.Path,
             model: training.Pix2Pix) -> "Validation | None":
    """None when `eval_every_steps` is 0, or (said in the log) when there is no validation pair in a folder."""
    if not config.eval_every_steps:
      return None
    if not config.data.root:
      logging.info("Validation: off (it reads the validation split from a folder; set config.data.root)")
      return None
    root = pathlib.Path(config.data.root).expanduser().resolve()
    pairs = pairs_lib.select(pairs_lib.find_pairs(root), pairs_lib.read_split(workdir / "split.json"), "val")
    if not pairs:
      logging.info("Validation: off (the validation split of %s is empty)", workdir / "split.json")
      return None
    evaluator = evaluation.Evaluator(model, image_size=config.image_size, in_channels=config.model.in_channels,
                                     batch_size=config.eval_batch_size, seed=config.seed)
    logging.info("Validation: %d pairs every %d steps; the best checkpoint by PSNR is kept", len(pairs),
                 config.eval_every_steps)
    return cls(evaluator, sources.FolderSource(root, pairs))

  def run(self, state: training.TrainState, step: int) -> dict[str, dict[str, float]]:
    scores = self.evaluator.score(state.g_params, state.g_stats, self.source)
    overall = metrics.summarize(scores.model)
    logging.info("step %d validation (%d pairs): PSNR %.3f  SSIM %.4f  MAE %.4f  RMSE %.4f", step, len(self.source),
                 *(overall[m]["mean"] for m in metrics.METRICS))
    return overall
