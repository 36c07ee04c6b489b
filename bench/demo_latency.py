r"""The web demo's time to first result in a real browser, on this CPU, for a 256² PNG and a 2,048² GeoTIFF.

  flock /tmp/cpu.lock python bench/demo_latency.py [--runs=3] [--screenshot=bench/demo_screenshot.png]

Starts `python -m sar2optical.commands.demo` on a workdir of the default model (the original's 8-level U-Net at
256², freshly initialised and saved as a real checkpoint, as bench/predict.py does: a trained model
computes exactly as much) and drives headless Chromium from the Debian packages with Selenium
(bench/chromium.py). Each run uploads a file under a new name and times, in the browser, from handing the
file to the upload field until the page shows the translation: upload, predict.py's translation into a
GeoTIFF, the PNG, both previews and their transfer. The first run after the server starts also compiles
the generator; it is reported apart from the median of the others. Inputs: a real SEN1-2 SAR patch
(256², 8-bit PNG, units uint8) and a float32 dB GeoTIFF (2,048², EPSG:32633) tiled from 64 real patches
(units db). Prints one JSON object; saves a screenshot of the page showing the PNG's result.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import chromium  # bench/chromium.py: the browser, as tests/test_web_demo.py drives it
import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

import predict as predict_bench  # bench/predict.py: its untrained default-size workdir

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent

SCENE = 2048
PATCH = 256
WAIT_S = 600


def write_mosaic(patches: list[pathlib.Path], path: pathlib.Path) -> None:
  """A float32 dB GeoTIFF of SCENE² from real 8-bit SAR patches (SEN1-2's scaling undone: -25 + 25·v/255)."""
  side = SCENE // PATCH
  rows = [np.hstack([np.asarray(Image.open(patches[(r * side + c) % len(patches)]).convert("L")) for c in range(side)])
          for r in range(side)]
  db = (-25.0 + 25.0 * np.vstack(rows) / 255.0).astype(np.float32)
  with rasterio.open(path, "w", driver="GTiff", height=SCENE, width=SCENE, count=1, dtype="float32", tiled=True,
                     crs="EPSG:32633", transform=from_origin(600000.0, 5300000.0, 10.0, 10.0)) as dataset:
    dataset.write(db[None])


def time_runs(driver, source: pathlib.Path, runs: int, scratch: pathlib.Path) -> list[float]:
  """Seconds from upload to the shown translation for `runs` copies of `source` under new names."""
  seconds = []
  for run in range(runs):
    copy = scratch / f"{source.stem}_run{run}{source.suffix}"
    shutil.copy(source, copy)
    started = time.perf_counter()
    chromium.upload(driver, copy)
    chromium.shown_translation(driver, copy.name, WAIT_S)
    seconds.append(round(time.perf_counter() - started, 2))
  return seconds


def measure(args: argparse.Namespace, scratch: pathlib.Path) -> dict:
  patches = sorted(pathlib.Path(args.sen12_root).glob("*/s1/*.png"))
  if not patches:
    sys.exit(f"error: no SEN1-2 SAR patches under {args.sen12_root}/*/s1/")
  workdir, scene = scratch / "workdir", scratch / "scene_2048.tif"
  predict_bench.write_untrained_workdir(workdir, in_channels=1)
  write_mosaic(patches, scene)
  port = chromium.free_port()
  started = time.perf_counter()
  server = chromium.start_demo(workdir, port)
  driver = None
  try:
    chromium.wait_until_serving(f"http://127.0.0.1:{port}/", server, WAIT_S)
    server_start_s = round(time.perf_counter() - started, 2)
    driver = chromium.open_browser(scratch / "downloads")
    driver.get(f"http://127.0.0.1:{port}/")
    png = time_runs(driver, patches[0], args.runs + 1, scratch)  # +1: the first compiles the generator
    driver.save_screenshot(str(args.screenshot))
    chromium.choose_units(driver, "db")
    geotiff = time_runs(driver, scene, args.runs, scratch)
    memory = round(chromium.memory_mb(server.pid, "VmHWM"), 1)
  finally:
    if driver is not None:
      driver.quit()
    chromium.stop(server)
  import gradio  # pylint: disable=g-import-not-at-top
  import selenium  # pylint: disable=g-import-not-at-top
  chromium_version = subprocess.run([str(chromium.CHROMIUM), "--version"], capture_output=True, text=True).stdout
  return {
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, {platform.platform()}",
      "model": "the default pix2pix generator (8-level U-Net, 256² tiles, 1 SAR band), untrained, step 0",
      "versions": {"gradio": gradio.__version__, "selenium": selenium.__version__,
                   "chromium": chromium_version.strip()},
      "server_start_s": server_start_s,
      "png_256": {"input": patches[0].name, "first_s": png[0], "runs_s": png[1:],
                  "median_s": statistics.median(png[1:])},
      "geotiff_2048_db": {"input": f"float32 dB, {SCENE}², from 64 SEN1-2 patches", "runs_s": geotiff,
                          "median_s": statistics.median(geotiff)},
      "server_peak_rss_mb": memory,
      "screenshot": str(args.screenshot),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs", type=int, default=3, help="timed runs per input (the PNG gets one more, first)")
  parser.add_argument("--sen12_root", default=str(REPO.parent / "shared/data/sen1-2"),
                      help="real SEN1-2 sample: <class>/s1/*.png")
  parser.add_argument("--screenshot", type=pathlib.Path, default=BENCH / "demo_screenshot.png")
  args = parser.parse_args()
  if reason := chromium.unavailable():
    sys.exit(f"error: {reason}")
  with tempfile.TemporaryDirectory() as scratch:
    print(json.dumps(measure(args, pathlib.Path(scratch)), indent=2))


if __name__ == "__main__":
  main()
