r"""One timed case of our model in a fresh process: train steps or generator inference on the CPU/GPU.

Prints one JSON line shaped like ../shared/bench/torch_seed_pix2pix.py's, so the benches compare
like with like. Used by bench/train_speed.py and bench/infer_speed.py; runnable alone:

  python bench/jax_case.py --mode train --batch 4 [--size 256 --levels 8 --steps 5 --warmup 2]
"""

import argparse
import json
import pathlib
import resource
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from sar2optical.configs import pix2pix  # noqa: E402
from sar2optical.model.pixels import PixelSpec  # noqa: E402
from sar2optical.training.mesh import global_batch, make_mesh  # noqa: E402
from sar2optical.training.recipe import make_recipe  # noqa: E402
from sar2optical.training.state import create_state  # noqa: E402
from sar2optical.training.step import jit_generate, jit_train_step  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mode", choices=("train", "infer"), default="train")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--in-channels", type=int, default=3)
  parser.add_argument("--levels", type=int, default=8)
  parser.add_argument("--steps", type=int, default=5, help="timed calls; the median is reported")
  parser.add_argument("--warmup", type=int, default=2, help="untimed calls after the first (compiling) one")
  args = parser.parse_args()

  config = pix2pix.get_config()
  config.model.levels = args.levels
  recipe = make_recipe(config, PixelSpec())
  mesh = make_mesh(jax.devices()[:1])
  holder = {"state": create_state(recipe, mesh, 0, args.size, args.in_channels)}
  rng = np.random.default_rng(0)
  batch = global_batch({
      "sar": rng.integers(0, 256, (args.batch, args.size, args.size, args.in_channels), dtype=np.uint8),
      "optical": rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)}, mesh)
  if args.mode == "train":
    train_step = jit_train_step(recipe, mesh)

    def call():
      holder["state"], metrics = train_step(holder["state"], batch)
      jax.block_until_ready(metrics)
  else:
    generate = jit_generate(recipe)

    def call():
      jax.block_until_ready(generate(holder["state"].g_params, holder["state"].g_stats, batch["sar"]))

  start = time.perf_counter()
  call()
  compile_seconds = time.perf_counter() - start
  for _ in range(args.warmup):
    call()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  print(json.dumps({
      "framework": "jax", "version": jax.__version__, "mode": args.mode, "batch": args.batch, "size": args.size,
      "in_channels": args.in_channels, "levels": args.levels, "step_ms": round(median * 1e3, 1),
      "images_per_second": round(args.batch / median, 3), "compile_and_first_call_s": round(compile_seconds, 2),
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "device": jax.devices()[0].device_kind}))


if __name__ == "__main__":
  main()
