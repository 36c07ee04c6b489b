r"""Soak: memory and open files over long runs of training, predict and eval. Prints one JSON object.

  python bench/soak.py                      # ~10 min on 2 cores
  python bench/soak.py --steps=20000 --files=20000

Three phases in this process, each sampled every --interval seconds by a thread reading the resident
set size (/proc/self/statm) and the open file descriptors (/proc/self/fd), against the phase's
progress read from what it writes:

- `train`: `loop.train` of a tiny model (2-level U-Net at 16², pixel discriminator, batch 2) for
  --steps steps with logging, sample grids, validation and checkpointing every --every steps (the
  checkpoints all kept, for the eval phase); progress: the last step in metrics.jsonl.
- `predict`: `translate_files` of --files small PNGs (48², a few tiles each) by the generator of the
  last checkpoint; progress: the output files written.
- `eval`: `evaluate(steps="all")` over every checkpoint of the train phase; progress: the steps scored.

For each phase, the least-squares slope of RSS (MB) and of the descriptors against progress over
the samples after --warmup (a fraction of the phase) is reported per 1000 units: ~0 when nothing leaks.
"""

import json
import os
import pathlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from PIL import Image  # noqa: E402

from sar2optical.configs import quickstart  # noqa: E402
from sar2optical.data import synthetic  # noqa: E402
from sar2optical.evaluation import workflow
from sar2optical.inference import translator
from sar2optical.training import loop  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.", lower_bound=10)
_EVERY = flags.DEFINE_integer("every", 100, "Steps between logs, sample grids, validations and checkpoints "
                              "(logs: every tenth of it).", lower_bound=10)
_FILES = flags.DEFINE_integer("files", 3000, "Files predict translates.", lower_bound=10)
_INTERVAL = flags.DEFINE_float("interval", 1.0, "Seconds between samples.")
_WARMUP = flags.DEFINE_float("warmup", 0.2, "Fraction of each phase's progress left out of the slope.")
_SCRATCH = flags.DEFINE_string("scratch", None, "Folder for the data, workdir and outputs (default: a temporary one).")


def resources() -> tuple[float, int]:
  """(RSS in MB, open file descriptors) of this process."""
  pages = int(pathlib.Path("/proc/self/statm").read_text().split()[1])
  return pages * os.sysconf("SC_PAGE_SIZE") / 2**20, len(os.listdir("/proc/self/fd"))


def sampled(run: Callable[[], object], progress: Callable[[], int], unit: str) -> dict:
  """Runs `run` while a thread samples (seconds, progress, RSS, fds); the slopes after warm-up per 1000 `unit`."""
  samples, done = [], threading.Event()

  def sample() -> None:
    began = time.monotonic()
    while not done.wait(_INTERVAL.value):
      samples.append((time.monotonic() - began, progress(), *resources()))

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  began = time.monotonic()
  run()
  done.set()
  sampler.join()
  samples.append((time.monotonic() - began, progress(), *resources()))
  seconds, done_units, rss, fds = (np.array(column, float) for column in zip(*samples))
  after = done_units >= _WARMUP.value * done_units.max()
  def slope(values: np.ndarray) -> float:
    return float(np.polyfit(done_units[after], values[after], 1)[0] * 1000) if np.ptp(done_units[after]) else float("nan")
  return {"unit": unit, "done": int(done_units.max()), "seconds": round(time.monotonic() - began, 1),
          "samples": len(samples), "rss_mb_start": round(rss[0], 1), "rss_mb_after_warmup": round(rss[after][0], 1),
          "rss_mb_end": round(rss[-1], 1), "rss_mb_per_1000": round(slope(rss), 3),
          "fds_after_warmup": [int(fds[after].min()), int(fds[after].max())], "fds_per_1000": round(slope(fds), 3)}


def last_logged_step(metrics: pathlib.Path) -> int:
  try:
    with open(metrics, "rb") as file:
      lines = file.read().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0
  except (OSError, ValueError):
    return 0


def main(argv: list[str]) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  scratch = pathlib.Path(_SCRATCH.value or tempfile.mkdtemp(prefix="soak-"))
  root, workdir, inputs = scratch / "data", scratch / "run", scratch / "in"
  synthetic.generate(root, pairs_per_class=6, size=32, seed=0)  # resized to 16² on loading
  config = quickstart.get_config()
  config.update_from_flattened_dict({
      "data.root": str(root), "image_size": 16, "batch_size": 2, "model.levels": 2, "model.disc": "pixel",
      "num_train_steps": _STEPS.value, "log_every_steps": _EVERY.value // 10, "sample_every_steps": _EVERY.value,
      "eval_every_steps": _EVERY.value, "checkpoint_every_steps": _EVERY.value, "keep_checkpoints": 10**6})
  result = {"train": sampled(lambda: loop.train(config, workdir), lambda: last_logged_step(workdir / "metrics.jsonl"),
                             "steps")}
  inputs.mkdir()
  rng = np.random.default_rng(0)
  for index in range(_FILES.value):
    Image.fromarray(rng.integers(0, 256, (48, 48), np.uint8)).save(inputs / f"{index:06d}.png")
  model = translator.load(workdir, batch_size=16)
  result["predict"] = sampled(lambda: model.translate_files(str(inputs), scratch / "out"),
                              lambda: len(os.listdir(scratch / "out")) if (scratch / "out").is_dir() else 0, "files")
  result["eval"] = sampled(lambda: workflow.evaluate(workdir, split="val", steps="all",
                                                       output_dir=str(scratch / "eval")),
                           lambda: len(list((scratch / "eval").glob("step_*/metrics.json"))), "checkpoints")
  result["config"] = {"steps": _STEPS.value, "every": _EVERY.value, "files": _FILES.value, "cpus": os.cpu_count()}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  app.run(main)
