r"""Training throughput on an accelerator: ours (fp32 and bf16) next to the PyTorch reference.

Needs only jax, flax, optax, numpy (and torch for the reference): no grain, tfds, ml_collections.
Prints one JSON line per case and a summary line; `bench/gpu.sh` runs it with the defaults.

  python bench/gpu_speed.py [--batches 16,64] [--dtypes float32,bfloat16] [--steps 20]

MFU = images/s × 106 GFLOP per training image (256², the original's model, 2 FLOPs per
multiply-add, torch's FlopCounter) / the device's dense bf16 peak — for both dtypes, so the
figures compare directly.
"""

import argparse
import importlib.util
import json
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from sar2optical import models  # noqa: E402
from sar2optical.training.mesh import global_batch, make_mesh  # noqa: E402
from sar2optical.training.recipe import Recipe  # noqa: E402
from sar2optical.training.state import create_state  # noqa: E402
from sar2optical.training.step import jit_train_step  # noqa: E402
from sar2optical.pixels import PixelSpec  # noqa: E402

TRAIN_GFLOP_PER_IMAGE = 106.0
DENSE_BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def peak_tflops(device_name: str) -> float | None:
  return next((peak for key, peak in DENSE_BF16_PEAK_TFLOPS.items() if key in device_name.upper()), None)


def time_steps(step, steps: int) -> tuple[float, list[float]]:
  """Seconds of the first call (compile + run) and of each of `steps` further calls."""
  start = time.perf_counter()
  step()
  first = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return first, times


def ours(batch: int, dtype: str, size: int, levels: int, steps: int) -> dict:
  compute = DTYPES[dtype]
  adam = optax.adam(2e-4, b1=0.5, b2=0.999)
  recipe = Recipe(models.UNetGenerator(levels=levels, dtype=compute), models.PatchDiscriminator(dtype=compute),
                  adam, adam, 100.0, PixelSpec())
  mesh = make_mesh(jax.devices()[:1])
  holder = {"state": create_state(recipe, mesh, 0, size, 1)}
  rng = np.random.default_rng(0)
  data = global_batch({"sar": rng.integers(0, 256, (batch, size, size, 1), dtype=np.uint8),
                       "optical": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)}, mesh)
  train_step = jit_train_step(recipe, mesh)

  def step():
    holder["state"], metrics = train_step(holder["state"], data)
    jax.block_until_ready(metrics)

  first, times = time_steps(step, steps)
  return {"framework": "jax", "version": jax.__version__, "dtype": dtype, "batch": batch,
          "compile_and_first_step_s": round(first, 2), "step_ms": round(statistics.median(times) * 1e3, 2),
          "images_per_second": round(batch / statistics.median(times), 2)}


def reference(path: str, batch: int, dtype: str, size: int, levels: int, steps: int) -> dict:
  import torch
  spec = importlib.util.spec_from_file_location("torch_seed_pix2pix", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  torch.manual_seed(0)
  pix2pix = module.Pix2Pix(1, 3, levels=levels)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  pix2pix.gen.to(device).train()
  pix2pix.disc.to(device).train()
  pix2pix.opt_g = torch.optim.Adam(pix2pix.gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
  pix2pix.opt_d = torch.optim.Adam(pix2pix.disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
  x = torch.rand(batch, 1, size, size, device=device) * 2 - 1
  y = torch.rand(batch, 3, size, size, device=device) * 2 - 1

  def step():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      pix2pix.train_step(x, y)
    if device.type == "cuda":
      torch.cuda.synchronize()

  first, times = time_steps(step, steps)
  return {"framework": "torch", "version": torch.__version__, "dtype": dtype + ("(autocast)" if dtype == "bfloat16"
                                                                                 else ""),
          "batch": batch, "compile_and_first_step_s": round(first, 2),
          "step_ms": round(statistics.median(times) * 1e3, 2),
          "images_per_second": round(batch / statistics.median(times), 2)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", default="16,64")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--steps", type=int, default=20, help="timed steps per case; the median is reported")
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--levels", type=int, default=8)
  parser.add_argument("--torch_reference", default=str(pathlib.Path(__file__).resolve().parents[2]
                                                       / "shared/bench/torch_seed_pix2pix.py"))
  args = parser.parse_args()
  device = jax.devices()[0]
  peak = peak_tflops(device.device_kind)
  gflop = TRAIN_GFLOP_PER_IMAGE * (args.size / 256) ** 2 if args.levels == 8 else None
  has_reference = pathlib.Path(args.torch_reference).is_file() and importlib.util.find_spec("torch") is not None
  results = []
  for batch in map(int, args.batches.split(",")):
    for dtype in args.dtypes.split(","):
      cases = [ours(batch, dtype, args.size, args.levels, args.steps)]
      if has_reference:
        cases.append(reference(args.torch_reference, batch, dtype, args.size, args.levels, args.steps))
      for case in cases:
        if peak and gflop:
          case["mfu"] = round(case["images_per_second"] * gflop / (peak * 1e3), 4)
        case["device"] = device.device_kind
        print(json.dumps(case), flush=True)
        results.append(case)
      if len(cases) == 2:
        print(json.dumps({"batch": batch, "dtype": dtype, "ratio_jax_over_torch": round(
            cases[0]["images_per_second"] / cases[1]["images_per_second"], 3)}), flush=True)
  if not has_reference:
    print(json.dumps({"note": f"PyTorch reference not run: torch or {args.torch_reference} missing"}))
  print(json.dumps({"summary": True, "device": device.device_kind, "peak_bf16_tflops": peak, "cases": len(results)}))


if __name__ == "__main__":
  main()
