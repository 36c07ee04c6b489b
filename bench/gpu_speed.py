r"""Throughput on an accelerator, in one run: the train step, train.py end to end, predict.py on a scene.

`bench/gpu.sh` runs it with the defaults on a GPU machine (the command is in docs/benchmarks.md);
`--smoke` runs every part with a tiny model on any machine, the CPU included, in a few minutes.

  python bench/gpu_speed.py [--batches 16,64,128,256] [--dtypes float32,bfloat16]
      [--forms dilated,subpixel] [--torch eager,compile] [--parts steps,torch,train,predict] [--smoke]

Parts, in this order (torch.compile last), each printing JSON lines (also appended to --out), then
one summary line:
  steps    our jit train step for every batch × dtype × transposed-conv form (`accelerator_form`:
           "dilated" is XLA's `lax.conv_transpose`, "subpixel" one stride-1 conv with 4× the outputs
           then depth-to-space). Compiled ahead of time, --compile_threads at once, then timed one
           after another: median of --steps calls after one warm-up call.
  torch    the PyTorch reference (--torch_reference, the original's model) at the same batches:
           eager in every dtype (bf16 as `torch.autocast`), and `torch.compile` (inductor, static
           shapes, a fresh compile per batch) in --torch_compile_dtypes. Skipped, saying why, without
           torch, the reference file, or (on the CPU) a C++ compiler.
  train    train.py itself on a `sen1_2/pixels` build of --data (the shared sample) cycled to
           --cycles copies, the paper's augmentation, --train_workers grain workers: images/s of its
           logged windows (median, the first window left out) over the step-only images/s of the same
           batch and dtype with train.py's form (the "dilated" default) from the steps part.
  predict  bench/predict.py --scene_size (a float32 σ⁰ GeoTIFF through predict.py, start-up, restore
           and compilation included), with its generator-alone rows.

MFU = images/s × 106 GFLOP per training image (256², the original's 8-level model, 2 FLOPs per
multiply-add, torch's FlopCounter) / the device's dense bf16 datasheet peak — for every dtype, so
the rows compare directly. Parts that fail (out of memory, say) print an "error" row and the run
goes on; PyTorch cases that would start after --deadline_s are skipped with a reason.
"""

import argparse
import concurrent.futures
import contextlib
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sar2optical.model import networks
from sar2optical.model.pixels import PixelSpec  # noqa: E402
from sar2optical.training.mesh import global_batch, make_mesh  # noqa: E402
from sar2optical.training.recipe import Recipe  # noqa: E402
from sar2optical.training.state import create_state  # noqa: E402
from sar2optical.training.step import jit_train_step  # noqa: E402

TRAIN_GFLOP_PER_IMAGE = 106.0
DENSE_BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
#: train.py's transposed-convolution form off the CPU (UNetGenerator's default).
TRAIN_FORM = networks.UNetGenerator.accelerator_form
#: --smoke: every part with a 1-level U-Net at 32², batch 2, in a few minutes on 2 CPU cores (predict's
#: rows keep bench/predict.py's 8-level model, on 4 tiles and a 512² scene).
SMOKE = {"batches": "2", "size": 32, "levels": 1, "steps": 2, "compile_threads": 2, "train_batch": 2, "cycles": 1,
         "train_steps": 6, "train_log_every": 2, "train_workers": 1, "scene_size": 512, "predict_batch": 4,
         "predict_tiles": 4}


def peak_tflops(device_name: str) -> float | None:
  return next((peak for key, peak in DENSE_BF16_PEAK_TFLOPS.items() if key in device_name.upper()), None)


class Report:
  """Prints JSON lines, appends them to --out, keeps the rows, and knows the run's deadline."""

  def __init__(self, out: str, deadline_s: float):
    self.rows: list[dict] = []
    self.out = pathlib.Path(out) if out else None
    self.deadline = time.perf_counter() + deadline_s

  def __call__(self, row: dict) -> dict:
    print(json.dumps(row), flush=True)
    if self.out:
      with self.out.open("a", encoding="utf-8") as file:
        file.write(json.dumps(row) + "\n")
    self.rows.append(row)
    return row

  def late(self) -> bool:
    return time.perf_counter() > self.deadline


def median_seconds(call: Callable[[], None], steps: int) -> float:
  """The median of `steps` timed calls after one untimed warm-up call."""
  call()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def rate(case: dict, batch: int, seconds: float, gflop: float | None, peak: float | None) -> dict:
  """`case` with step_ms, images_per_second and (where known) MFU."""
  case.update(step_ms=round(seconds * 1e3, 2), images_per_second=round(batch / seconds, 2))
  if gflop and peak:
    case["mfu"] = round(case["images_per_second"] * gflop / (peak * 1e3), 4)
  return case


def our_steps(args: argparse.Namespace, report: Report, gflop: float | None, peak: float | None) -> None:
  """Every batch × dtype × form: compiled ahead of time by a thread pool, then timed in turn."""
  mesh = make_mesh(jax.devices()[:1])
  adam = optax.adam(2e-4, b1=0.5, b2=0.999)
  cases = [(batch, dtype, form) for batch in args.batches for dtype in args.dtypes for form in args.forms]

  def recipe(dtype: str, form: str) -> Recipe:
    compute = DTYPES[dtype]
    return Recipe(networks.UNetGenerator(levels=args.levels, dtype=compute, accelerator_form=form),
                  networks.PatchDiscriminator(dtype=compute), adam, adam, 100.0, PixelSpec())

  def abstract_inputs(case: tuple[int, str, str]):
    batch, dtype, form = case
    state = jax.eval_shape(lambda: create_state(recipe(dtype, form), mesh, 0, args.size, 1))
    data = {"sar": jax.ShapeDtypeStruct((batch, args.size, args.size, 1), jnp.uint8),
            "optical": jax.ShapeDtypeStruct((batch, args.size, args.size, 3), jnp.uint8)}
    return state, data

  def compile_case(lowered) -> tuple[object, float]:
    start = time.perf_counter()
    return lowered.compile(), time.perf_counter() - start

  # Tracing is Python (one thread); XLA's compilations (and autotuning) run in parallel, all before
  # the first timed step, so that none runs beside one.
  lowered = [jit_train_step(recipe(dtype, form), mesh).lower(*abstract_inputs((batch, dtype, form)))
             for batch, dtype, form in cases]
  with concurrent.futures.ThreadPoolExecutor(args.compile_threads) as pool:
    compiled = [pool.submit(compile_case, lowering) for lowering in lowered]
    concurrent.futures.wait(compiled)
  rng = np.random.default_rng(0)
  for (batch, dtype, form), future in zip(cases, compiled):
    case = {"part": "steps", "framework": "jax", "version": jax.__version__, "form": form, "dtype": dtype,
            "batch": batch, "device": jax.devices()[0].device_kind}
    try:
      step, compile_s = future.result()
      holder = {"state": create_state(recipe(dtype, form), mesh, 0, args.size, 1)}
      data = global_batch({"sar": rng.integers(0, 256, (batch, args.size, args.size, 1), dtype=np.uint8),
                           "optical": rng.integers(0, 256, (batch, args.size, args.size, 3), dtype=np.uint8)}, mesh)

      def call():
        holder["state"], metrics = step(holder["state"], data)
        jax.block_until_ready(metrics)

      report(rate({**case, "compile_s": round(compile_s, 2)}, batch, median_seconds(call, args.steps), gflop, peak))
    except Exception as error:  # noqa: BLE001  (out of memory at a large batch: the run goes on)
      report({**case, "error": f"{type(error).__name__}: {str(error)[:300]}"})


def load_reference(path: str):
  spec = importlib.util.spec_from_file_location("torch_seed_pix2pix", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def torch_skip_reason(path: str, compiled: bool) -> str | None:
  """Why the PyTorch reference (or its compiled form) cannot run here, or None."""
  if importlib.util.find_spec("torch") is None:
    return "torch is not installed"
  if not pathlib.Path(path).is_file():
    return f"{path} is missing (pass --torch_reference)"
  import torch
  if compiled and not torch.cuda.is_available() and shutil.which(os.environ.get("CXX", "g++")) is None:
    return "torch.compile on the CPU needs a C++ compiler (inductor): none found"
  return None


def torch_steps(args: argparse.Namespace, report: Report, mode: str, gflop: float | None, peak: float | None) -> None:
  """The reference's train step in `mode`: eager in every dtype, compile in --torch_compile_dtypes."""
  for dtype in args.dtypes if mode == "eager" else args.torch_compile_dtypes:
    reason = torch_skip_reason(args.torch_reference, mode == "compile")
    if reason:
      report({"part": "torch", "mode": mode, "dtype": dtype, "skipped": reason})
      continue
    import torch
    for batch in args.batches:
      case = {"part": "torch", "framework": "torch", "mode": mode, "dtype": dtype, "batch": batch}
      if report.late():
        report({**case, "skipped": "past --deadline_s"})
        continue
      try:
        report(rate(*torch_case(args, mode, dtype, batch, case), gflop, peak))
      except Exception as error:  # noqa: BLE001
        report({**case, "error": f"{type(error).__name__}: {str(error)[:300]}"})
      if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the case's memory, for our next runs and train.py


def torch_case(args: argparse.Namespace, mode: str, dtype: str, batch: int, case: dict) -> tuple[dict, int, float]:
  import torch
  module = load_reference(args.torch_reference)
  torch.manual_seed(0)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  pix2pix = module.Pix2Pix(1, 3, levels=args.levels)
  pix2pix.gen.to(device).train()
  pix2pix.disc.to(device).train()
  pix2pix.opt_g = torch.optim.Adam(pix2pix.gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
  pix2pix.opt_d = torch.optim.Adam(pix2pix.disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
  if mode == "compile":
    torch._dynamo.reset()  # each batch compiles afresh, with static shapes
    pix2pix.gen_fwd = torch.compile(pix2pix.gen, dynamic=False)
    pix2pix.disc_fwd = torch.compile(pix2pix.disc, dynamic=False)
  x = torch.rand(batch, 1, args.size, args.size, device=device) * 2 - 1
  y = torch.rand(batch, 3, args.size, args.size, device=device) * 2 - 1

  def call():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      pix2pix.train_step(x, y)
    if device.type == "cuda":
      torch.cuda.synchronize()

  start = time.perf_counter()
  call()
  first = time.perf_counter() - start
  seconds = median_seconds(call, args.steps)
  return {**case, "version": torch.__version__, "compile_and_first_step_s": round(first, 2),
          "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}, batch, seconds


def cycled_sample(data: pathlib.Path, cycles: int, into: pathlib.Path) -> list[str]:
  """`into/<class>_<k>/s1|s2/...`: symbolic links to the sample's pairs, `cycles` times; returns their s1 paths."""
  from sar2optical.data import pairs as pairs_lib
  for k in range(cycles):
    for pair in pairs_lib.find_pairs(str(data)):
      for relative in (pair.s1, pair.s2):
        label, kind, name = pathlib.PurePosixPath(relative).parts[-3:]
        link = into / f"{label}_{k}" / kind / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((data / relative).resolve())
  return [pair.s1 for pair in pairs_lib.find_pairs(str(into))]


def train_end_to_end(args: argparse.Namespace, report: Report, scratch: pathlib.Path) -> None:
  """train.py on a cycled `sen1_2/pixels` build, paper augmentation; its images/s over the step-only rate."""
  from sar2optical.data import build_tfds, splits
  root, data_dir, workdir = scratch / "cycled", scratch / "tfds", scratch / "train"
  start = time.perf_counter()
  pairs = cycled_sample(pathlib.Path(args.data), args.cycles, root)
  split_file = scratch / "split.json"  # every pair in train
  splits.write_split(split_file, {"data": {"train": pairs, "val": [], "test": []}})
  with contextlib.redirect_stdout(sys.stderr):  # TFDS reports on stdout; the JSON goes there
    build_tfds.build(str(root), data_dir=str(data_dir), config="pixels", split_file=str(split_file))
  build_s = time.perf_counter() - start
  batch, dtype = args.train_batch, args.train_dtype
  command = [sys.executable, str(REPO / "train.py"), "--config=" + str(REPO / "configs/pix2pix.py") + ":paper",
             f"--workdir={workdir}", "--config.data.source=tfds", f"--config.data.tfds_data_dir={data_dir}",
             f"--config.data.workers={args.train_workers}", f"--config.batch_size={batch}",
             f"--config.model.dtype={dtype}", f"--config.model.levels={args.levels}",
             f"--config.image_size={args.size}", f"--config.num_train_steps={args.train_steps}",
             f"--config.log_every_steps={args.train_log_every}", "--config.eval_every_steps=0",
             f"--config.sample_every_steps={args.train_steps}", f"--config.checkpoint_every_steps={args.train_steps}"]
  start = time.perf_counter()
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  case = {"part": "train", "batch": batch, "dtype": dtype, "records": len(pairs), "tfds_build_s": round(build_s, 1),
          "train_py_s": round(time.perf_counter() - start, 1), "workers": args.train_workers,
          "steps": args.train_steps, "log_every_steps": args.train_log_every}
  if result.returncode != 0:
    report({**case, "error": result.stderr[-2000:]})
    return
  windows = [row["images_per_second"] for row in map(json.loads, (workdir / "metrics.jsonl").open())
             if "images_per_second" in row][1:]  # the first window holds the pipeline's start
  step_only = next((row["images_per_second"] for row in report.rows if row.get("part") == "steps"
                    and (row["batch"], row["dtype"], row["form"]) == (batch, dtype, TRAIN_FORM)
                    and "images_per_second" in row), None)
  images_per_second = statistics.median(windows) if windows else None
  report({**case, "windows": len(windows), "images_per_second": images_per_second and round(images_per_second, 2),
          "step_only_images_per_second": step_only, "form": TRAIN_FORM,
          "ratio_end_to_end_over_step": round(images_per_second / step_only, 3) if images_per_second and step_only
          else None})


def predict_scene(args: argparse.Namespace, report: Report) -> None:
  """bench/predict.py on a --scene_size² σ⁰ scene (and its generator-alone rows)."""
  command = [sys.executable, str(REPO / "bench/predict.py"), f"--scene_size={args.scene_size}",
             f"--batch_size={args.predict_batch}", f"--tiles={args.predict_tiles}",
             f"--torch_reference={pathlib.Path(args.torch_reference).resolve()}"]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    report({"part": "predict", "error": result.stderr[-2000:]})
    return
  predicted = json.loads(result.stdout[result.stdout.index("{"):])
  report({"part": "predict", "batch": args.predict_batch, **predicted})


def summary(args: argparse.Namespace, report: Report, peak: float | None, seconds: float) -> dict:
  """Per batch and dtype: each form's images/s and MFU, the faster form, ratios over each reference."""
  rows = []
  for batch in args.batches:
    for dtype in args.dtypes:
      ours = {row["form"]: row for row in report.rows if row.get("part") == "steps" and row["batch"] == batch
              and row["dtype"] == dtype and "images_per_second" in row}
      if not ours:
        continue
      best = max(ours.values(), key=lambda row: row["images_per_second"])
      row = {"batch": batch, "dtype": dtype, "faster_form": best["form"],
             **{f"{form}_images_per_second": case["images_per_second"] for form, case in ours.items()},
             "mfu": best.get("mfu")}
      for case in report.rows:
        if case.get("part") == "torch" and (case.get("batch"), case["dtype"]) == (batch, dtype) \
            and "images_per_second" in case:
          row[f"torch_{case['mode']}_images_per_second"] = case["images_per_second"]
          row[f"ratio_over_torch_{case['mode']}"] = round(best["images_per_second"] / case["images_per_second"], 3)
      rows.append(row)
  train = next((row for row in report.rows if row.get("part") == "train"), {})
  scene = next((row.get("scene") for row in report.rows if row.get("part") == "predict"), None) or {}
  return {"summary": True, "device": jax.devices()[0].device_kind, "jax": jax.__version__,
          "peak_bf16_tflops": peak, "size": args.size, "levels": args.levels, "steps": rows,
          "train_end_to_end_over_step": train.get("ratio_end_to_end_over_step"),
          "scene_tiles_per_second": scene.get("grid_tiles_per_second"), "seconds": round(seconds, 1),
          "errors": sum("error" in row for row in report.rows),
          "skipped": sum("skipped" in row for row in report.rows)}


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--parts", default="steps,torch,train,predict")
  parser.add_argument("--batches", default="16,64,128,256")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--forms", default="dilated,subpixel", help="accelerator_form values of the steps part")
  parser.add_argument("--torch", default="eager,compile", help="PyTorch reference modes")
  parser.add_argument("--torch_compile_dtypes", default="bfloat16")
  parser.add_argument("--steps", type=int, default=15, help="timed steps per case; the median is reported")
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--levels", type=int, default=8)
  parser.add_argument("--compile_threads", type=int, default=4, help="our cases compiled at once")
  parser.add_argument("--torch_reference", default=str(REPO.parent / "shared/bench/torch_seed_pix2pix.py"))
  parser.add_argument("--data", default=str(REPO.parent / "shared/data/sen1-2"), help="SEN1-2 sample (Kaggle layout)")
  parser.add_argument("--cycles", type=int, default=32, help="copies of the sample in the train part's build")
  parser.add_argument("--train_batch", type=int, default=64)
  parser.add_argument("--train_dtype", default="bfloat16")
  parser.add_argument("--train_steps", type=int, default=400)
  parser.add_argument("--train_log_every", type=int, default=50)
  parser.add_argument("--train_workers", type=int, default=12)
  parser.add_argument("--scene_size", type=int, default=10980)
  parser.add_argument("--predict_batch", type=int, default=32)
  parser.add_argument("--predict_tiles", type=int, default=256, help="tiles of predict's generator-alone rows")
  parser.add_argument("--deadline_s", type=float, default=420.0,
                      help="seconds from the start after which no PyTorch case starts (skipped, saying so)")
  parser.add_argument("--out", default="", help="also append the JSON lines to this file")
  parser.add_argument("--smoke", action="store_true", help="a tiny model and batch on any machine: " +
                      ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
  args = parser.parse_args()
  if args.smoke:
    vars(args).update(SMOKE)
  for name in ("parts", "dtypes", "forms", "torch", "torch_compile_dtypes"):
    setattr(args, name, [value for value in getattr(args, name).split(",") if value])
  args.batches = [int(batch) for batch in args.batches.split(",")]
  return args


def main() -> None:
  args = parse_args()
  start = time.perf_counter()
  report = Report(args.out, args.deadline_s)
  peak = peak_tflops(jax.devices()[0].device_kind)
  gflop = TRAIN_GFLOP_PER_IMAGE * (args.size / 256) ** 2 if args.levels == 8 else None
  if "steps" in args.parts:
    our_steps(args, report, gflop, peak)
  if "torch" in args.parts and "eager" in args.torch:
    torch_steps(args, report, "eager", gflop, peak)
  if "train" in args.parts:
    with tempfile.TemporaryDirectory() as scratch:
      train_end_to_end(args, report, pathlib.Path(scratch))
  if "predict" in args.parts:
    predict_scene(args, report)
  if "torch" in args.parts and "compile" in args.torch:  # last: its compilations take the time that is left
    torch_steps(args, report, "compile", gflop, peak)
  report(summary(args, report, peak, time.perf_counter() - start))


if __name__ == "__main__":
  main()
