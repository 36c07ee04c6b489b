r"""The web demo under bursts of concurrent clients: latency per request, refusals and the server's memory.

  flock /tmp/cpu.lock python bench/demo_concurrency.py [--clients=1,4,8,16] [--max_queue=8] [--baseline_runs=3]

Starts `python -m sar2optical.commands.demo` (its default limits but --max_queue) on a workdir of the default model (the
original's 8-level U-Net at 256², freshly initialised and saved as a real checkpoint, as bench/predict.py
does: a trained model computes exactly as much) and sends it bursts of N clients at once with gradio_client
(bench/chromium.py `submit`: the page's translation of an upload, files downloaded), each client its own
session, all requests in flight together. A request's latency runs from the submit to its outputs
downloaded: upload, wait in the queue, translation, download. The server translates one request at a
time and keeps at most --max_queue waiting, so a burst of N > max_queue + 1 has some refused ("Queue is
full"). The input is one real SEN1-2 SAR patch (256², 8-bit PNG: one tile). The baseline is one client
alone, --baseline_runs times, in the same run; one untimed request first compiles the generator. The
server's resident memory (VmRSS) is sampled every 20 ms during each burst. Prints one JSON object.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import chromium  # bench/chromium.py: the server and the client, as tests/test_web_demo.py drives them

import predict as predict_bench  # bench/predict.py: its untrained default-size workdir

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent

WAIT_S = 600


def timed_request(client, source: pathlib.Path) -> float | None:
  """Seconds from submit to the outputs downloaded, or None when the full queue refused the request."""
  from gradio_client.utils import QueueError  # pylint: disable=g-import-not-at-top
  started = time.perf_counter()
  try:
    chromium.submit(client, source).result(timeout=WAIT_S)
  except QueueError:
    return None
  return round(time.perf_counter() - started, 2)


def burst(url: str, clients: int, source: pathlib.Path, pid: int, scratch: pathlib.Path) -> dict:
  """`clients` requests at once, each from its own gradio_client session: latencies, refusals, peak RSS."""
  from gradio_client import Client  # pylint: disable=g-import-not-at-top
  sessions = [Client(url, verbose=False, download_files=str(scratch / f"c{clients}_{i}")) for i in range(clients)]
  with chromium.PeakRss(pid) as memory, ThreadPoolExecutor(clients) as pool:
    results = list(pool.map(lambda client: timed_request(client, source), sessions))
  latencies = sorted(seconds for seconds in results if seconds is not None)
  return {"clients": clients, "translated": len(latencies), "refused": results.count(None),
          "latency_s": latencies, "median_s": round(statistics.median(latencies), 2), "max_s": latencies[-1],
          "server_peak_rss_mb": round(memory.peak_mb)}


def measure(args: argparse.Namespace, scratch: pathlib.Path) -> dict:
  patches = sorted(pathlib.Path(args.sen12_root).glob("*/s1/*.png"))
  if not patches:
    sys.exit(f"error: no SEN1-2 SAR patches under {args.sen12_root}/*/s1/")
  workdir = scratch / "workdir"
  predict_bench.write_untrained_workdir(workdir, in_channels=1)
  port = chromium.free_port()
  server = chromium.start_demo(workdir, port, f"--max_queue={args.max_queue}")
  url = f"http://127.0.0.1:{port}/"
  try:
    chromium.wait_until_serving(url, server, WAIT_S)
    burst(url, 1, patches[0], server.pid, scratch)  # compiles the generator
    baseline = [burst(url, 1, patches[0], server.pid, scratch)["median_s"] for _ in range(args.baseline_runs)]
    bursts = [burst(url, clients, patches[0], server.pid, scratch) for clients in args.clients]
    after = burst(url, 1, patches[0], server.pid, scratch)
    peak = round(chromium.memory_mb(server.pid, "VmHWM"))
  finally:
    chromium.stop(server)
  import gradio  # pylint: disable=g-import-not-at-top
  return {
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, {platform.platform()}",
      "model": "the default pix2pix generator (8-level U-Net, 256² tiles, 1 SAR band), untrained, step 0",
      "gradio": gradio.__version__, "input": f"{patches[0].name} (256², 8-bit PNG, units uint8)",
      "max_queue": args.max_queue,
      "baseline_1_client": {"runs_s": baseline, "median_s": statistics.median(baseline)},
      "bursts": bursts,
      "after_the_bursts": {"translated": after["translated"], "latency_s": after["latency_s"]},
      "server_peak_rss_mb_whole_run": peak,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clients", type=lambda text: [int(n) for n in text.split(",")], default=[1, 4, 8, 16],
                      help="burst sizes, comma-separated")
  parser.add_argument("--max_queue", type=int, default=8, help="the server's --max_queue")
  parser.add_argument("--baseline_runs", type=int, default=3, help="single requests timed for the baseline")
  parser.add_argument("--sen12_root", default=str(REPO.parent / "shared/data/sen1-2"),
                      help="real SEN1-2 sample: <class>/s1/*.png")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as scratch:
    print(json.dumps(measure(args, pathlib.Path(scratch)), indent=2))


if __name__ == "__main__":
  main()
