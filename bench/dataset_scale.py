r"""Scale of the data side on SEN1-2's original layout: index, split, check, TFDS build, first batch. JSON out.

  python bench/dataset_scale.py [--sizes=5000,20000,50000] [--trees=/tmp/sen12_scale] [--output=FILE.json]
      [--pairs_per_scene=700] [--image_size=8] [--check_workers=2]

For each size a tree of small random pairs (--image_size², the same few PNGs written again and again)
in the original layout (four season folders, --pairs_per_scene pairs per s1_<n>/s2_<n> folder pair,
as SEN1-2's 282,384 pairs in about 400 scenes) is written under --trees once and reused. Each phase
runs in a freshly spawned process, which reports its wall time and peak RSS:

  index     find_pairs (pairs, labels, scene ids) and a seeded scene split (make_split)
  check     check_folder: every image decoded, in --check_workers processes
  build     the sen1_2/pixels TFDS build (ArrayRecord) into a temporary folder
  pipeline  index + split + the training iterator's first batch (32 pairs), then pairs/s over 100 batches,
            and the memory the train split's source takes in each grain worker (beside a list of Pairs')

Then each measure is fitted with a line through the sizes (least squares) and projected to 282,384
pairs. Small images make decoding cheap, so what is measured is the per-pair overhead of the data
code, not PNG decoding of 256² images (bench/input_pipeline.py measures that); --image_size=128
(64 KB of pixels a pair, 3.3 GB at 50,000) shows the build's memory staying flat past the 1 GB where
TFDS's own writer would spill its buffer to disk (through TensorFlow).
"""

import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import pathlib
import pickle
import platform
import resource
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top,wrong-import-position
from sar2optical.data import synthetic

FULL_SIZE = 282_384
_SIZES = flags.DEFINE_list("sizes", ["5000", "20000", "50000"], "Pairs in each generated tree.")
_TREES = flags.DEFINE_string("trees", "/tmp/sen12_scale", "Where the generated trees are kept (and reused).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON here.")
_PAIRS_PER_SCENE = flags.DEFINE_integer("pairs_per_scene", 700, "Pairs in each scene folder pair.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 8, "Side of the generated images.")
_CHECK_WORKERS = flags.DEFINE_integer("check_workers", 2, "Processes of the check phase.")
_BATCH_SIZE = 32
_TIMED_BATCHES = 100
_VARIANTS = 64  # distinct random PNGs per side


def _png_bytes(rng: np.random.Generator, shape: tuple[int, ...]) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()


def make_tree(root: pathlib.Path, pairs: int, pairs_per_scene: int, size: int) -> pathlib.Path:
  """Writes `pairs` pairs in the original layout under `root` (once: a finished tree has a DONE file)."""
  if (root / "DONE").is_file():
    return root
  rng = np.random.default_rng(0)
  sar = [_png_bytes(rng, (size, size)) for _ in range(_VARIANTS)]
  optical = [_png_bytes(rng, (size, size, 3)) for _ in range(_VARIANTS)]
  for index in range(pairs):
    scene, patch = divmod(index, pairs_per_scene)
    paths = synthetic.pair_paths("original", scene % 4, scene + 1, patch + 1)
    for relative, variants in zip(paths, (sar, optical)):
      path = root / relative
      if patch == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(variants[index % _VARIANTS])
  (root / "DONE").write_text(f"{pairs} pairs\n")
  return root


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _index(root: str) -> dict:
  from sar2optical.data import pairs as pairs_lib
  from sar2optical.data import splits
  start = time.perf_counter()
  found = pairs_lib.find_pairs(root)
  indexed = time.perf_counter()
  split = splits.make_split(found, seed=0)
  done = time.perf_counter()
  assert not splits.shared_scenes(split, found)
  return {"index_s": indexed - start, "split_s": done - indexed, "index_split_s": done - start,
          "scenes": len({pair.scene for pair in found}), "peak_rss_mb": _peak_rss_mb()}


def _check(root: str, workers: int) -> dict:
  from sar2optical.data import check
  start = time.perf_counter()
  report = check.check_folder(root, image_size=0, workers=workers)
  assert not report.problems, report.problems[:3]
  return {"check_s": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def _build(root: str) -> dict:
  from sar2optical.data import build_tfds
  with tempfile.TemporaryDirectory() as data_dir, contextlib.redirect_stdout(sys.stderr):
    start = time.perf_counter()
    builder = build_tfds.build(root, data_dir=data_dir, config="pixels")
    seconds = time.perf_counter() - start
    examples = sum(split.num_examples for split in builder.info.splits.values())
  return {"build_s": seconds, "examples": examples, "peak_rss_mb": _peak_rss_mb()}


def _pipeline(root: str, image_size: int) -> dict:
  from sar2optical.data import pairs as pairs_lib
  from sar2optical.data import pipeline, sources, splits
  start = time.perf_counter()
  found = pairs_lib.find_pairs(root)
  train = splits.select(found, splits.make_split(found, seed=0), "train")
  source = sources.FolderSource(root, train)
  iterator = pipeline.train_iterator(source, image_size=image_size, in_channels=1, global_batch_size=_BATCH_SIZE,
                                     seed=0, workers=0)
  next(iterator)
  first = time.perf_counter()
  for _ in range(_TIMED_BATCHES):
    next(iterator)
  seconds = time.perf_counter() - first
  iterator.close()
  return {"first_batch_s": first - start, "pairs_per_s": _TIMED_BATCHES * _BATCH_SIZE / seconds,
          "peak_rss_mb": _peak_rss_mb(), "source_in_a_worker_mb": _unpickled_mb(source),
          "pair_list_in_a_worker_mb": _unpickled_mb(train)}


def _unpickled_mb(value) -> float:
  """The memory that `value` takes once unpickled, as in each grain worker process."""
  blob = pickle.dumps(value)
  tracemalloc.start()
  copy = pickle.loads(blob)
  size = tracemalloc.get_traced_memory()[0]
  tracemalloc.stop()
  del copy
  return size / 2**20


def _in_fresh_process(function, *args) -> dict:
  """`function(*args)` in a newly spawned process: its own peak RSS, no state from the phases before."""
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    return pool.submit(function, *args).result()


def _projection(sizes: list[int], values: list[float]) -> float:
  slope, intercept = np.polyfit(sizes, values, 1)
  return float(slope * FULL_SIZE + intercept)


def main(argv: list[str]) -> None:
  del argv
  sizes = sorted(map(int, _SIZES.value))
  rows = []
  for size in sizes:
    start = time.perf_counter()
    root = str(make_tree(pathlib.Path(_TREES.value) / f"original_{size}", size, _PAIRS_PER_SCENE.value,
                         _IMAGE_SIZE.value))
    row = {"pairs": size, "generate_s": time.perf_counter() - start}
    for phase, function, args in (("index", _index, ()), ("check", _check, (_CHECK_WORKERS.value,)),
                                  ("build", _build, ()), ("pipeline", _pipeline, (_IMAGE_SIZE.value,))):
      row[phase] = _in_fresh_process(function, root, *args)
    print(json.dumps(row), file=sys.stderr)
    rows.append(row)
  measures = [(phase, key) for phase in ("index", "check", "build", "pipeline") for key in rows[0][phase]
              if key.endswith("_s") or key.endswith("_mb")]
  result = {
      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
      "date": time.strftime("%Y-%m-%d", time.gmtime()),
      "image_size": _IMAGE_SIZE.value, "pairs_per_scene": _PAIRS_PER_SCENE.value,
      "check_workers": _CHECK_WORKERS.value, "batch_size": _BATCH_SIZE,
      "rows": [{key: value if not isinstance(value, dict) else {k: round(v, 3) for k, v in value.items()}
                for key, value in row.items()} for row in rows],
      f"projected_{FULL_SIZE}": {f"{phase}.{key}": round(_projection(sizes, [row[phase][key] for row in rows]), 2)
                                 for phase, key in measures if phase != "pipeline" or key != "pairs_per_s"},
  }
  projected = result[f"projected_{FULL_SIZE}"]
  result["goals"] = {
      "index_split_under_60s_projected": projected["index.index_split_s"] < 60,
      "build_peak_rss_under_2GB_measured": max(row["build"]["peak_rss_mb"] for row in rows) < 2048,
  }
  text = json.dumps(result, indent=2)
  print(text)
  if _OUTPUT.value:
    pathlib.Path(_OUTPUT.value).write_text(text + "\n")


if __name__ == "__main__":
  app.run(main)
