"""Grain input pipelines that yield batches of uint8 SAR/optical images.

Pixels stay uint8 here; scaling to [-1, 1] happens on the device.
"""

from collections.abc import Iterator, Sequence
import dataclasses
import os

import grain
import numpy as np

from sar2optical.data.images import load_pair
from sar2optical.data.pairs import Pair
from sar2optical.errors import DataError

# Each prefetched element is a whole batch, so grain's default buffer (500) would hold
# gigabytes of images.
_READ_OPTIONS = grain.ReadOptions(num_threads=8, prefetch_buffer_size=16)


@dataclasses.dataclass(frozen=True)
class LoadPair(grain.transforms.Map):
  """Loads a `Pair` into {"sar", "optical"} uint8 arrays; picklable for worker processes."""
  root: str
  image_size: int
  in_channels: int

  def map(self, element: Pair) -> dict[str, np.ndarray]:
    return load_pair(self.root, element, self.image_size, self.in_channels)


@dataclasses.dataclass(frozen=True)
class LoadEvalExample(LoadPair):
  """Loads an (index, pair, valid) triple into an example with "index" and "valid"."""

  def map(self, element: tuple[int, Pair, bool]) -> dict[str, np.ndarray]:
    index, pair, valid = element
    return {**super().map(pair), "valid": np.asarray(valid), "index": np.asarray(index)}


def train_iterator(
    root: str | os.PathLike[str],
    pairs: Sequence[Pair],
    *,
    image_size: int,
    in_channels: int,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.DatasetIterator:
  """Returns an endless iterator over this process's part of shuffled training batches.

  Every epoch is reshuffled with `seed`. Process p gets examples p, p + process_count, ...
  of the global order, so the processes' batches together form the global batch.

  Args:
    root: data root that the pairs' paths are relative to.
    pairs: training pairs.
    image_size: side length of the square images.
    in_channels: SAR channels, 1 or 3 (the band repeated).
    global_batch_size: batch size summed over all processes.
    seed: shuffle seed.
    process_index: index of this process, in [0, process_count).
    process_count: number of processes that read data.

  Returns:
    A grain iterator (with get_state/set_state) of {"sar": uint8 (b, S, S, in_channels),
    "optical": uint8 (b, S, S, 3)} with b = global_batch_size // process_count.
  """
  if not pairs:
    raise DataError(f"no training pairs under {root}: the train split is empty")
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise DataError(
        f"global batch size {global_batch_size} must be a positive multiple of the "
        f"process count {process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  dataset = grain.MapDataset.source(list(pairs)).shuffle(seed=seed).repeat(None)
  dataset = dataset[process_index::process_count]
  dataset = dataset.map(LoadPair(os.fspath(root), image_size, in_channels))
  dataset = dataset.batch(global_batch_size // process_count, drop_remainder=True)
  return iter(dataset.to_iter_dataset(_READ_OPTIONS))


def eval_batches(
    root: str | os.PathLike[str],
    pairs: Sequence[Pair],
    *,
    image_size: int,
    in_channels: int,
    batch_size: int,
) -> Iterator[dict[str, np.ndarray]]:
  """Returns batches of every pair exactly once, in order.

  The last batch is padded to `batch_size` by repeating the last pair with valid=False, so
  every batch has the same shape.

  Args:
    root: data root that the pairs' paths are relative to.
    pairs: pairs to evaluate.
    image_size: side length of the square images.
    in_channels: SAR channels, 1 or 3 (the band repeated).
    batch_size: examples per batch.

  Returns:
    An iterator of {"sar", "optical", "valid": bool (b,), "index": int (b,)} where "index"
    is the position of each example in `pairs`.
  """
  if not pairs:
    raise DataError(f"no pairs to evaluate under {root}: the split is empty")
  if batch_size <= 0:
    raise DataError(f"eval batch size must be positive, got {batch_size}")
  padding = -len(pairs) % batch_size
  examples = [(index, pair, True) for index, pair in enumerate(pairs)]
  examples += [(len(pairs) - 1, pairs[-1], False)] * padding
  dataset = grain.MapDataset.source(examples)
  dataset = dataset.map(LoadEvalExample(os.fspath(root), image_size, in_channels))
  dataset = dataset.batch(batch_size)
  return iter(dataset.to_iter_dataset(_READ_OPTIONS))
