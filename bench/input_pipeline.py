r"""Input pipeline throughput: pairs/s through decode, augment and batch, printed as JSON.

  python bench/input_pipeline.py [--root=../shared/data/sen1-2] [--pairs=3000] [--workers=0,2]
      [--batch_size=32] [--image_size=256] [--augment=paper]

Rows, each with 0 and 2 grain worker processes (--workers):
  baseline       a plain grain + PIL pipeline: PNG files decoded by Pillow, batched (no augmentation)
  folder         our pipeline on the PNG folder (OpenCV decode + --augment)
  tfds_png       our pipeline on a sen1_2/png build (PNG bytes decoded by OpenCV + --augment)
  tfds_pixels    our pipeline on a sen1_2/pixels build (pre-decoded uint8 + --augment)

The SEN1-2 folder is cycled (the pipelines repeat it) to --pairs pairs, timed after one warm-up
batch (which pays for starting the workers); the TFDS builds go to a temporary folder. The
summary's ratio is the fastest row with the most workers over the baseline with as many.

Every row shuffles the sample's records with grain's index shuffle, which walks a domain of at
least 2^16 indices down to the dataset's size: over the 94 pairs of ../shared/data/sen1-2 it
costs about 0.25 ms a pair, over a dataset of 2^16 pairs or more (SEN1-2 has 282,384) a few
microseconds. The rows that decode no PNG understate a full dataset's throughput most.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import grain
import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top,wrong-import-position
from sar2optical.data import build_tfds, pipeline, sources, splits
from sar2optical.data import pairs as pairs_lib
from sar2optical.data.augment import Augmentation

_ROOT = flags.DEFINE_string("root", str(pathlib.Path(__file__).resolve().parents[2] / "shared/data/sen1-2"),
                            "SEN1-2 folder in the Kaggle layout.")
_PAIRS = flags.DEFINE_integer("pairs", 3000, "Pairs timed per row.")
_WORKERS = flags.DEFINE_list("workers", ["0", "2"], "Worker process counts.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Pairs per batch.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 256, "Side of the batched images.")
_AUGMENT = flags.DEFINE_enum("augment", "paper", ["none", "paper"], "Augmentation of our pipeline's rows.")


@dataclasses.dataclass(frozen=True)
class _LoadWithPillow(grain.transforms.Map):
  """The plain loader: Pillow decodes both images of a pair."""
  root: str

  def map(self, element: pairs_lib.Pair) -> dict[str, np.ndarray]:
    root = pathlib.Path(self.root)
    return {"sar": np.asarray(Image.open(root / element.s1).convert("L"))[..., np.newaxis],
            "optical": np.asarray(Image.open(root / element.s2).convert("RGB"))}


def baseline_iterator(root: str, pairs: list[pairs_lib.Pair], workers: int) -> grain.DatasetIterator:
  """A plain grain + PIL pipeline: shuffled pairs, Pillow decode per pair, batched."""
  dataset = grain.MapDataset.source(pairs).shuffle(seed=0).repeat(None)
  dataset = dataset.map(_LoadWithPillow(root)).batch(_BATCH_SIZE.value)
  dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=8, prefetch_buffer_size=16))
  if workers:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return iter(dataset)


def pairs_per_second(iterator: grain.DatasetIterator) -> float:
  next(iterator)
  batches = -(-_PAIRS.value // _BATCH_SIZE.value)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  seconds = time.perf_counter() - start
  iterator.close()
  return batches * _BATCH_SIZE.value / seconds


def main(argv: list[str]) -> None:
  del argv
  root = _ROOT.value
  pairs = pairs_lib.find_pairs(root)
  paper = _AUGMENT.value == "paper"
  augmentation = Augmentation(jitter=paper, hflip=paper)
  with tempfile.TemporaryDirectory() as data_dir:
    split_file = pathlib.Path(data_dir) / "split.json"  # Every pair in train, as in the folder rows.
    splits.write_split(split_file, {"data": {"train": [pair.s1 for pair in pairs], "val": [], "test": []}})
    with contextlib.redirect_stdout(sys.stderr):  # TFDS reports its builds on stdout; the JSON goes there.
      for config in sources.TFDS_CONFIGS:
        build_tfds.build(root, data_dir=data_dir, config=config, split_file=str(split_file))
    rows = []
    make_source = {
        "folder": lambda: sources.FolderSource(root, pairs),
        "tfds_png": lambda: sources.TfdsSource("train", data_dir=data_dir, config="png"),
        "tfds_pixels": lambda: sources.TfdsSource("train", data_dir=data_dir, config="pixels"),
    }
    for workers in map(int, _WORKERS.value):
      rows.append({"pipeline": "baseline", "workers": workers,
                   "pairs_per_s": pairs_per_second(baseline_iterator(root, pairs, workers))})
      for name, source in make_source.items():
        iterator = pipeline.train_iterator(
            source(), image_size=_IMAGE_SIZE.value, in_channels=1, global_batch_size=_BATCH_SIZE.value, seed=0,
            augmentation=augmentation, workers=workers)
        rows.append({"pipeline": name, "workers": workers, "pairs_per_s": pairs_per_second(iterator)})
      print(json.dumps(rows[-len(make_source) - 1:]), file=sys.stderr)
  most = max(map(int, _WORKERS.value))
  baseline = next(row["pairs_per_s"] for row in rows if row["pipeline"] == "baseline" and row["workers"] == most)
  best = max((row for row in rows if row["workers"] == most), key=lambda row: row["pairs_per_s"])
  print(json.dumps({
      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
      "pairs_timed": _PAIRS.value, "batch_size": _BATCH_SIZE.value, "image_size": _IMAGE_SIZE.value,
      "augment": _AUGMENT.value, "rows": [{**row, "pairs_per_s": round(row["pairs_per_s"], 1)} for row in rows],
      "best": best["pipeline"], "workers": most,
      "ratio_to_baseline": round(best["pairs_per_s"] / baseline, 2),
  }, indent=2))


if __name__ == "__main__":
  app.run(main)
