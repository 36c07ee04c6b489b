r"""Benchmarks translation: tiles/s and peak RSS of our generator and of the PyTorch reference, and of predict.py.

  python bench/predict.py                       # ~2 min on 2 cores: both generators + a 2048² scene
  python bench/predict.py --scene_size=10980    # a whole Sentinel-1 scene through predict.py (memory)
  python bench/predict.py --host_only           # predict's host side alone: reading, scaling, tiling,
                                                # blending, writing a float32 σ⁰ GeoTIFF, no network

Prints one JSON object. Every case runs in its own process, whose peak RSS (ru_maxrss) is read
when it ends:

- `ours` and `torch`: the 8-level U-Net (the original's) at 256², randomly initialised, on the
  same uint8 tiles in the same batches; input scaling, forward pass and the copy back to host
  memory are timed after one warm-up batch. The PyTorch reference is imported from
  --torch_reference and skipped, saying so, when it or torch is missing.
- `scene`: predict.py itself on a synthetic float32 σ⁰ GeoTIFF of --scene_size² (linear units,
  zero-filled border, EPSG:32633), with a fresh, untrained generator (`create_state`)
  written as a real workdir checkpoint. The scene is written in bands of rows, so the benchmark
  never holds it either.
- `host` (--host_only, instead of the above): predict.py's translation of the same scene
  (--scene_size, linear units, GeoTIFF out) with a generator-shaped no-op in place of the network:
  same tile shapes and batches, its output the SAR tile itself in the model range. Its
  `host_tiles_per_second` is the rate the host side can feed a device at; median of --repeats runs.
"""

import importlib.util
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grain  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from absl import flags  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import make_metadata
from sar2optical.commands import cli
from sar2optical.configs import fields
from sar2optical.inference import tile_engine
from sar2optical.inference.restore import TrainedGenerator  # noqa: E402
from sar2optical.inference.tiling import TileGrid  # noqa: E402
from sar2optical.model.pixels import PixelSpec  # noqa: E402
from sar2optical.training.mesh import make_mesh  # noqa: E402
from sar2optical.training.recipe import make_recipe  # noqa: E402
from sar2optical.training.state import create_state, init_state  # noqa: E402

_TILES = flags.DEFINE_integer("tiles", 64, "Tiles per generator case.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Tiles per batch (both generators, and predict.py).",
                                   lower_bound=1)
_IN_CHANNELS = flags.DEFINE_enum("in_channels", "1", ["1", "3"], "SAR channels of both generators.")
_SCENE_SIZE = flags.DEFINE_integer("scene_size", 2048, "Side of the scene predict.py translates; 0: none.",
                                   lower_bound=0)
_SCRATCH = flags.DEFINE_string("scratch", None, "Folder for the tiles, scene, checkpoint and output "
                               "(a 10,980² scene needs about 0.8 GB); default: a temporary folder.")
_TORCH_REFERENCE = flags.DEFINE_string("torch_reference", str(REPO.parent / "shared/bench/torch_seed_pix2pix.py"),
                                       "The PyTorch SAR2Optical reference (its UnetGenerator).")
_HOST_ONLY = flags.DEFINE_bool("host_only", False, "Measure predict's host side alone (no network).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "With --host_only: runs, of which the median is reported.",
                                lower_bound=1)
_CASE = flags.DEFINE_enum("case", None, ["ours", "torch"], "Internal: run one generator case in this process.")
_TILES_FILE = flags.DEFINE_string("tiles_file", None, "Internal: the .npy of tiles for --case.")

TILE = 256
LEVELS = 8


def _time_batches(tiles: np.ndarray, forward) -> dict:
  """Warm-up on the first batch, then tiles/s over all batches; `forward` maps uint8 NHWC → host array."""
  batch_size = _BATCH_SIZE.value
  batches = [tiles[i:i + batch_size] for i in range(0, len(tiles) - batch_size + 1, batch_size)]
  start = time.perf_counter()
  forward(batches[0])
  warmup = time.perf_counter() - start
  start = time.perf_counter()
  for batch in batches:
    forward(batch)
  elapsed = time.perf_counter() - start
  return {"tiles": len(batches) * batch_size, "tiles_per_second": round(len(batches) * batch_size / elapsed, 3),
          "first_batch_s": round(warmup, 2)}


def _fresh_config(in_channels: int):
  config = fields.default_config()  # the original's: 8 levels at 256²
  config.model.in_channels = in_channels
  return config


def _ours(tiles: np.ndarray) -> dict:
  config = _fresh_config(tiles.shape[-1])
  recipe = make_recipe(config, PixelSpec())

  def generator_variables(key: jax.Array):
    state = init_state(recipe, key, TILE, tiles.shape[-1])
    return state.g_params, state.g_stats  # under jit, D and the optimizer moments are never built

  g_params, g_stats = jax.jit(generator_variables)(jax.random.PRNGKey(0))
  generator = TrainedGenerator(config, PixelSpec(), 0, recipe.generator, g_params, g_stats)
  result = _time_batches(tiles, lambda batch: np.asarray(generator(batch)))
  return {"framework": "jax", "version": jax.__version__, "device": str(jax.devices()[0]), **result}


def _load_torch_reference() -> tuple[object, str | None]:
  """(the reference module, None), or (None, why it is skipped)."""
  path = pathlib.Path(_TORCH_REFERENCE.value)
  if importlib.util.find_spec("torch") is None:
    return None, "torch is not installed (pip install torch==2.13.0, CPU build)"
  if not path.is_file():
    return None, f"PyTorch reference not found at {path} (--torch_reference)"
  spec = importlib.util.spec_from_file_location("torch_seed_pix2pix", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module, None


def _torch(tiles: np.ndarray) -> dict:
  import torch
  reference, _ = _load_torch_reference()
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  torch.manual_seed(0)
  model = reference.UnetGenerator(tiles.shape[-1], 3, levels=LEVELS)
  model.apply(reference.init_weights)
  model.to(device).eval()

  def forward(batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
      x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
      return model(x).permute(0, 2, 3, 1).cpu().numpy()

  return {"framework": "torch", "version": torch.__version__, "device": str(device),
          "threads": torch.get_num_threads(), **_time_batches(tiles, forward)}


def _run_measured(command: list[str]) -> tuple[str, float]:
  """(stdout, peak RSS in MB) of `command` run to its end; its stderr goes to ours."""
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
  output = process.stdout.read()
  _, status, usage = os.wait4(process.pid, 0)
  process.returncode = os.waitstatus_to_exitcode(status)
  if process.returncode:
    raise RuntimeError(f"{' '.join(command)} exited with status {process.returncode}")
  return output, round(usage.ru_maxrss / 1024, 1)


def _generator_case(case: str, tiles_file: pathlib.Path) -> dict:
  output, peak_rss_mb = _run_measured([sys.executable, __file__, f"--case={case}", f"--tiles_file={tiles_file}",
                                       f"--batch_size={_BATCH_SIZE.value}",
                                       f"--torch_reference={pathlib.Path(_TORCH_REFERENCE.value).resolve()}"])
  return {**json.loads(output.strip().splitlines()[-1]), "peak_rss_mb": peak_rss_mb}


def _write_scene(path: pathlib.Path, size: int) -> None:
  """A float32 σ⁰ (linear) scene: smooth land cover × 4-look speckle, a zero-filled border, 10 m UTM pixels."""
  rng = np.random.default_rng(0)
  columns = np.arange(size)
  with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=1, dtype="float32",
                     crs="EPSG:32633", transform=from_origin(600000.0, 5300000.0, 10.0, 10.0), tiled=True,
                     blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER") as scene:
    for top in range(0, size, 512):
      rows = np.arange(top, min(top + 512, size))[:, None]
      db = -12.0 + 6.0 * np.sin(columns / 97.0) * np.cos(rows / 61.0) + 4.0 * ((rows // 700 + columns // 900) % 2)
      sigma0 = 10 ** (db / 10) * rng.gamma(4.0, 0.25, db.shape)
      sigma0[:, :size // 20] = 0.0  # the zero fill beside a terrain-corrected swath
      scene.write(sigma0.astype(np.float32)[None], window=Window(0, top, size, len(rows)))


def write_untrained_workdir(workdir: pathlib.Path, in_channels: int) -> None:
  """A real checkpoint (step 0) of a freshly initialised, untrained model of the default size (also used by
  bench/demo_latency.py)."""
  config = _fresh_config(in_channels)
  recipe = make_recipe(config, PixelSpec())
  mesh = make_mesh(jax.local_devices(backend="cpu")[:1])  # leaves an accelerator to predict.py
  state = create_state(recipe, mesh, 0, TILE, in_channels)
  checkpoints = manager.Checkpoints(workdir)
  data_iterator = iter(grain.MapDataset.range(1).to_iter_dataset())
  checkpoints.save(0, state, data_iterator, make_metadata(config, PixelSpec(), 0))
  checkpoints.wait()
  checkpoints.close()


def _scene_case(scratch: pathlib.Path, size: int) -> dict:
  scene, workdir, output = scratch / "scene.tif", scratch / "workdir", scratch / "predicted"
  _write_scene(scene, size)
  write_untrained_workdir(workdir, int(_IN_CHANNELS.value))
  start = time.perf_counter()
  stdout, peak_rss_mb = _run_measured([sys.executable, str(REPO / "predict.py"), f"--workdir={workdir}",
                                       f"--input={scene}", f"--output={output}", "--sar_units=linear",
                                       f"--batch_size={_BATCH_SIZE.value}", "--overwrite"])
  elapsed = time.perf_counter() - start
  with rasterio.open(output / "scene.tif") as result:
    shape = [result.height, result.width, result.count]
  tiles = len(TileGrid.with_overlap_fraction(size, size, TILE, 0.25))  # predict.py's default overlap
  return {"size": size, "input_mb": round(scene.stat().st_size / 2**20, 1), "output_shape": shape,
          "grid_tiles": tiles, "seconds": round(elapsed, 1),  # start-up, restore and compilation included
          "grid_tiles_per_second": round(tiles / elapsed, 3),
          "peak_rss_mb": peak_rss_mb, "summary": stdout.strip(),
          "generator": "untrained, fresh create_state, saved as a real checkpoint (step 0)"}


class _NoOpGenerator:
  """Generator-shaped, without a network: uint8 SAR (B, S, S, C) → its first band as RGB in the model range."""
  pixels = PixelSpec()
  step = 0
  image_size = TILE

  def __init__(self, in_channels: int):
    self.in_channels = in_channels

  def __call__(self, sar: np.ndarray) -> np.ndarray:
    return np.repeat(sar[..., :1], 3, axis=-1).astype(np.float32) * (2.0 / 255.0) - 1.0


def _host_case(scratch: pathlib.Path, size: int) -> dict:
  scene, output = scratch / "scene.tif", scratch / "host"
  _write_scene(scene, size)
  tiles = len(TileGrid.with_overlap_fraction(size, size, TILE, 0.25))
  options = tile_engine.Options(sar=tile_engine.SarScaling("linear"), batch_size=_BATCH_SIZE.value, overwrite=True)
  seconds = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    summary = tile_engine.translate_files(_NoOpGenerator(int(_IN_CHANNELS.value)), [(scene, pathlib.Path("scene.tif"))],
                                          output, options)
    seconds.append(time.perf_counter() - start)
    assert summary.translated == 1, summary
  median = float(np.median(seconds))
  return {"size": size, "grid_tiles": tiles, "tile": TILE, "seconds": [round(s, 2) for s in seconds],
          "host_tiles_per_second": round(tiles / median, 1), "cpus": os.cpu_count(),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
          "output_mb": round((output / "scene.tif").stat().st_size / 2**20, 1)}


def _report(scratch: pathlib.Path) -> dict:
  if _HOST_ONLY.value:
    return {"host": _host_case(scratch, _SCENE_SIZE.value or 2048)}
  in_channels = int(_IN_CHANNELS.value)
  tiles = np.random.default_rng(0).integers(0, 256, (_TILES.value, TILE, TILE, in_channels), np.uint8)
  tiles_file = scratch / "tiles.npy"
  np.save(tiles_file, tiles)
  report = {"tile": TILE, "levels": LEVELS, "in_channels": in_channels, "batch_size": _BATCH_SIZE.value,
            "cpus": os.cpu_count(), "ours": _generator_case("ours", tiles_file)}
  _, skipped = _load_torch_reference()
  if skipped:
    print(f"Skipping the PyTorch reference: {skipped}", file=sys.stderr)
    report["torch"] = {"skipped": skipped}
  else:
    report["torch"] = _generator_case("torch", tiles_file)
    report["ours_over_torch"] = round(report["ours"]["tiles_per_second"] / report["torch"]["tiles_per_second"], 3)
  if _SCENE_SIZE.value:
    report["scene"] = _scene_case(scratch, _SCENE_SIZE.value)
  return report


def main(argv: list[str]) -> None:
  del argv
  if _CASE.value:
    tiles = np.load(_TILES_FILE.value)
    print(json.dumps((_ours if _CASE.value == "ours" else _torch)(tiles)))
    return
  if _SCRATCH.value:
    pathlib.Path(_SCRATCH.value).mkdir(parents=True, exist_ok=True)
    report = _report(pathlib.Path(_SCRATCH.value))
  else:
    with tempfile.TemporaryDirectory() as scratch:
      report = _report(pathlib.Path(scratch))
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  cli.run(main)
