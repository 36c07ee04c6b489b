"""Grain input pipelines that yield batches of uint8 SAR/optical images.

Training: one global, seeded order of examples (reshuffled every epoch); example i of it is
decoded, fitted and augmented with a random generator seeded by (seed, i), so it is the same
whatever the number of worker processes or JAX processes. Global batch t is examples
[t*B, (t+1)*B); process p of P gets the p-th contiguous B/P of them, so the global batch is the
same for any P. Pixels stay uint8 here; scaling to [-1, 1] happens on the device.

The training pairs' ground pixel relative to the model's is `TrainIterator.pixel_scale` (stored pixels
per model pixel), which checkpoints record so that predict and eval use the model at that pixel.
"""

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grain
import numpy as np
from absl import flags, logging

from sar2optical.core.errors import DataError
from sar2optical.data.augment import Augmentation, fit_pair
from sar2optical.data.images import repeat_band
from sar2optical.data.sources import PairSource

# Each prefetched element is a whole batch, so grain's default buffer (500) would hold
# gigabytes of images.
_PREFETCH_BATCHES = 16
# Threads that make batches, per process: the work releases the GIL (reads, OpenCV, copies), but
# threads beyond the CPUs only add memory traffic (on 2 CPUs, 8 threads a process were 15 % slower).
_MAX_THREADS = 8


def _read_options(workers: int) -> grain.ReadOptions:
  """Threads for each of `workers` processes (or this one) that share this machine's CPUs."""
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
  threads = min(_MAX_THREADS, max(1, cpus // max(workers, 1)))
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=_PREFETCH_BATCHES)


@dataclasses.dataclass(frozen=True)
class _Decode(grain.transforms.Map):
  """Decodes a record of `source`; with `skip_bad`, a bad one becomes None (and is logged)."""
  source: PairSource
  skip_bad: bool

  def map(self, element: Any) -> dict[str, np.ndarray] | None:
    try:
      return self.source.decode(element)
    except DataError as error:
      if not self.skip_bad:
        raise
      logging.warning("Skipping a bad record (config.data.skip_bad): %s", error)
      return None


@dataclasses.dataclass(frozen=True)
class _Fit(grain.transforms.RandomMap):
  """Fits (and augments) a decoded pair to image_size and repeats the SAR band to in_channels.

  `side`: the stored side every pair must have (resize-fit training: one pixel scale); None: any.
  """
  image_size: int
  in_channels: int
  augmentation: Augmentation
  side: int | None = None

  def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    side = element["sar"].shape[0]
    if self.side is not None and side != self.side:
      raise DataError(f"config.data.fit=resize: training pairs of {side}x{side} and {self.side}x{self.side} would "
                      "train on two ground resolutions; make them one size, or set config.data.fit=crop")
    fitted = fit_pair(element, self.image_size, self.augmentation, rng)
    fitted["sar"] = repeat_band(fitted["sar"], self.in_channels)
    return fitted


@dataclasses.dataclass(frozen=True)
class _StackMarkingBad:
  """Stacks a batch in which bad records (None) are blank rows with "valid" False."""
  image_size: int
  in_channels: int

  def __call__(self, examples: Sequence[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray]:
    size = self.image_size
    blank = {"sar": np.zeros((size, size, self.in_channels), np.uint8),
             "optical": np.zeros((size, size, 3), np.uint8)}
    rows = [blank if example is None else example for example in examples]
    return {"sar": np.stack([row["sar"] for row in rows]),
            "optical": np.stack([row["optical"] for row in rows]),
            "valid": np.array([example is not None for example in examples])}


class _DropBadRows(grain.transforms.Map):
  """Drops the rows of bad records and counts them (runs in the main process)."""

  def __init__(self):
    self.count = 0

  def map(self, element: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    valid = element.pop("valid")
    self.count += int(valid.size - valid.sum())
    return element if valid.all() else {key: value[valid] for key, value in element.items()}


class TrainIterator(grain.DatasetIterator):
  """Endless training batches of this process; checkpointable with grain.checkpoint.

  Its state is grain's state of the pipeline plus the global batch the pipeline started at
  (0, or a step set with `restart_at`). `layout` names what a saved state depends on beyond
  the config (process count, workers): restore a state only where it is equal. `pixel_scale`: stored
  pixels per pixel of the batches (side / image_size when pairs are resized, 1 when cropped).
  """

  def __init__(self, make_pipeline: Callable[[int], grain.IterDataset], layout: dict[str, Any],
               bad_rows: _DropBadRows | None, pixel_scale: float):
    super().__init__()
    self.layout = layout
    self.pixel_scale = pixel_scale
    self._make_pipeline = make_pipeline
    self._bad_rows = bad_rows
    self._start_batch = 0
    self._pipeline = iter(make_pipeline(0))

  @property
  def skipped(self) -> int:
    """Bad records skipped so far by this process (config.data.skip_bad)."""
    return self._bad_rows.count if self._bad_rows else 0

  def restart_at(self, batch: int) -> None:
    """Continues with global batch `batch` (batches 0, 1, ... are those of steps 1, 2, ...)."""
    self._pipeline.close()
    self._start_batch = batch
    self._pipeline = iter(self._make_pipeline(batch))

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._pipeline)

  def get_state(self) -> dict[str, Any]:
    return {"start_batch": self._start_batch, "pipeline": self._pipeline.get_state()}

  def set_state(self, state: dict[str, Any]) -> None:
    if state["start_batch"] != self._start_batch:
      self.restart_at(state["start_batch"])
    self._pipeline.set_state(state["pipeline"])

  def start_prefetch(self) -> None:
    self._pipeline.start_prefetch()

  def close(self) -> None:
    self._pipeline.close()


def train_iterator(
    source: PairSource,
    *,
    image_size: int,
    in_channels: int,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    augmentation: Augmentation = Augmentation(),
    workers: int = 0,
    skip_bad: bool = False,
) -> TrainIterator:
  """Returns an endless iterator over this process's part of shuffled training batches.

  Args:
    source: the training pairs, e.g. `FolderSource(root, pairs)` or `TfdsSource("train")`.
    image_size: side length of the square images.
    in_channels: SAR channels, 1 or 3 (the band repeated).
    global_batch_size: batch size summed over all processes.
    seed: seed of the shuffle and of the augmentation.
    process_index: index of this process, in [0, process_count).
    process_count: number of processes that read data.
    augmentation: random transforms of training pairs; none by default.
    workers: grain worker processes (mp_prefetch); 0 decodes in threads of this process.
    skip_bad: skip (and count) records that cannot be decoded instead of raising DataError.

  Returns:
    A `TrainIterator` of {"sar": uint8 (b, S, S, in_channels), "optical": uint8 (b, S, S, 3)}
    with b = global_batch_size // process_count. Its `pixel_scale` is measured on the first pair that
    decodes; resized pairs of another side raise DataError when read, cropped ones smaller than S too.
  """
  if not len(source):
    raise DataError(f"no training pairs in {source.description}: the train split is empty")
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise DataError(
        f"global batch size {global_batch_size} must be a positive multiple of the "
        f"process count {process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  local_batch_size = global_batch_size // process_count
  side = _stored_side(source, skip_bad)
  if augmentation.crop and side < image_size:
    raise DataError(f"config.data.fit=crop: the training pairs of {source.description} are {side}x{side}, smaller "
                    f"than config.image_size={image_size}: set config.data.fit=resize or a smaller image_size")
  examples = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  examples = examples.map(_Decode(source, skip_bad))
  fit = _Fit(image_size, in_channels, augmentation, None if augmentation.crop else side)
  examples = examples.random_map(fit, seed=seed)
  batch_fn = _StackMarkingBad(image_size, in_channels) if skip_bad else None
  local_batches = examples.batch(local_batch_size, batch_fn=batch_fn)[process_index::process_count]
  bad_rows = _DropBadRows() if skip_bad else None

  def make_pipeline(first_batch: int) -> grain.IterDataset:
    pipeline = local_batches[first_batch:].to_iter_dataset(_read_options(workers))
    if workers:
      if not flags.FLAGS.is_parsed():
        # grain <= 0.2.18 reads one of its absl flags in mp_prefetch, which fails outside absl.app
        # (google/grain#1355); its default is what we want.
        flags.FLAGS.mark_as_parsed()
      pipeline = pipeline.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    if bad_rows:
      pipeline = pipeline.map(bad_rows).filter(lambda batch: len(batch["sar"]) > 0)
      pipeline = grain.experimental.RebatchIterDataset(pipeline, local_batch_size, drop_remainder=True)
    return pipeline

  layout = {"process_count": process_count, "workers": workers, "skip_bad": skip_bad}
  return TrainIterator(make_pipeline, layout, bad_rows, 1.0 if augmentation.crop else side / image_size)


def _stored_side(source: PairSource, skip_bad: bool) -> int:
  """The side of the first pair of `source` that decodes (with `skip_bad`, bad ones are passed over)."""
  for index in range(len(source)):
    try:
      return source.decode(source[index])["sar"].shape[0]
    except DataError:
      if not skip_bad:
        raise
  raise DataError(f"no training pair of {source.description} can be decoded")


def first_pairs(source: PairSource, count: int, *, image_size: int, in_channels: int,
                crop: bool = False) -> dict[str, np.ndarray]:
  """The first `count` pairs of `source` (fewer if it is smaller), fitted without augmentation, stacked.

  `crop`: a seeded image_size window of each at its stored resolution (a crop-fit model's pixel), not resized.
  """
  fit = _Fit(image_size, in_channels, Augmentation(crop=crop))
  examples = [fit.random_map(source.decode(source[index]), np.random.default_rng(0))
              for index in range(min(count, len(source)))]
  return {key: np.stack([example[key] for example in examples]) for key in ("sar", "optical")}


@dataclasses.dataclass(frozen=True)
class _LoadEvalExample(grain.transforms.Map):
  """(index, valid) → the record of `source` at index, fitted without augmentation (None: at its stored size),
  with "index" and "valid"."""
  source: PairSource
  image_size: int | None
  in_channels: int

  def map(self, element: tuple[int, bool]) -> dict[str, np.ndarray]:
    index, valid = element
    pair = self.source.decode(self.source[index])
    if self.image_size is None:
      fitted = {**pair, "sar": repeat_band(pair["sar"], self.in_channels)}
    else:
      fitted = _Fit(self.image_size, self.in_channels, Augmentation()).random_map(pair, np.random.default_rng(0))
    return {**fitted, "valid": np.asarray(valid), "index": np.asarray(index)}


def eval_batches(source: PairSource, *, image_size: int | None, in_channels: int,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Batches of every record of `source` exactly once, in order, never augmented.

  `image_size` None keeps each pair's stored size (batches of more than one then need pairs of one size).
  The last batch is padded to `batch_size` by repeating the last record with valid=False, so
  every batch has the same shape. Each batch is {"sar", "optical", "valid": bool (b,),
  "index": int (b,)}, "index" being the record's position in `source`.
  """
  if not len(source):
    raise DataError(f"no pairs to evaluate in {source.description}: the split is empty")
  if batch_size <= 0:
    raise DataError(f"eval batch size must be positive, got {batch_size}")
  examples = [(index, True) for index in range(len(source))]
  examples += [(len(source) - 1, False)] * (-len(source) % batch_size)
  dataset = grain.MapDataset.source(examples).map(_LoadEvalExample(source, image_size, in_channels))
  return iter(dataset.batch(batch_size).to_iter_dataset(_read_options(0)))
