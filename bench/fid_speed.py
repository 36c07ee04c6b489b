r"""FID feature extraction images/s, ours against pytorch-fid's InceptionV3([3]) (alternated, medians), and the
wall time of `eval.py --fid --lpips` on a workdir.

  python bench/fid_speed.py [--batch 16] [--rounds 3] [--workdir=W --data_root=D --split=all] [--weights_dir=DIR]

Needs torch, torchvision, pytorch-fid (test dependencies). Nothing is downloaded: both networks get
the same random variance-preserving weights (Kaiming-normal convs, BatchNorm ≈ identity), written
with torchvision's alexnet backbone to --weights_dir (default a temporary folder) and passed to eval.py
with their SHA-256 pinned. Prints one JSON object.
"""

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from pytorch_fid import inception as fid_inception

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sar2optical.metrics import feature_weights


def variance_preserving(module: torch.nn.Module, seed: int) -> None:
  """Kaiming-normal conv/linear weights; BatchNorm scale 1, shift 0, running mean 0, variance 1."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
        m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / m.weight[0].numel()) ** 0.5)
        if m.bias is not None:
          m.bias.zero_()
      elif isinstance(m, torch.nn.BatchNorm2d):
        m.weight.fill_(1), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1)


def save(state_dict: dict, path: pathlib.Path) -> str:
  torch.save(state_dict, path)
  return hashlib.sha256(path.read_bytes()).hexdigest()


def make_weights(directory: pathlib.Path) -> dict:
  """Random FID Inception (pytorch-fid's names) and AlexNet (torchvision's) state_dicts saved; {name: (path, sha)}."""
  inception = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
  variance_preserving(inception, 0)
  alexnet = torchvision.models.alexnet(weights=None)
  variance_preserving(alexnet, 1)
  return {"inception": (directory / "fid_inception.pth", save(inception.state_dict(), directory / "fid_inception.pth")),
          "alexnet": (directory / "alexnet.pth", save(alexnet.state_dict(), directory / "alexnet.pth")),
          "inception_state_dict": inception.state_dict()}


def speed(made: dict, batch: int, rounds: int) -> dict:
  """Median images/s of both extractors on the same uint8 batches (256², as SEN1-2), alternated."""
  state_dict = made["inception_state_dict"]
  fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
  reference = fid_inception.InceptionV3([3]).eval()
  ours, _ = feature_weights.fid_network("standard", str(made["inception"][0]), made["inception"][1])
  images = np.random.default_rng(0).integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8)
  tensor = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255)
  np.asarray(ours(images))  # compile
  with torch.no_grad():
    reference(tensor)
  times = {"ours": [], "pytorch_fid": []}
  for _ in range(rounds):
    start = time.perf_counter()
    np.asarray(ours(images))
    times["ours"].append(time.perf_counter() - start)
    start = time.perf_counter()
    with torch.no_grad():
      reference(tensor)[0].numpy()
    times["pytorch_fid"].append(time.perf_counter() - start)
  rates = {name: batch / statistics.median(values) for name, values in times.items()}
  return {"batch": batch, "rounds": rounds, "ours_images_per_s": rates["ours"],
          "pytorch_fid_images_per_s": rates["pytorch_fid"], "ratio": rates["ours"] / rates["pytorch_fid"]}


def eval_wall_time(made: dict, args: argparse.Namespace) -> dict:
  """Seconds of `eval.py --fid --lpips` (a fresh process, compilation included) on the workdir's pairs."""
  output = pathlib.Path(tempfile.mkdtemp(prefix="fid_bench_eval_"))
  command = [sys.executable, str(REPO / "eval.py"), f"--workdir={args.workdir}", f"--split={args.split}",
             f"--output_dir={output}", "--fid", f"--fid_weights={made['inception'][0]}",
             f"--fid_weights_sha256={made['inception'][1]}", "--lpips",
             f"--lpips_backbone_weights={made['alexnet'][0]}", f"--lpips_backbone_weights_sha256={made['alexnet'][1]}"]
  if args.data_root:
    command.append(f"--data_root={args.data_root}")
  start = time.perf_counter()
  completed = subprocess.run(command, capture_output=True, text=True, check=False)
  seconds = time.perf_counter() - start
  if completed.returncode:
    raise SystemExit(completed.stderr[-2000:])
  metrics = json.loads(next(output.glob("step_*/metrics.json")).read_text())
  return {"eval_fid_lpips_seconds": seconds, "pairs": metrics["n"], "eval_output": str(output),
          "table": completed.stdout}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--workdir", help="a workdir to run eval.py --fid --lpips on (skipped without)")
  parser.add_argument("--data_root")
  parser.add_argument("--split", default="all")
  parser.add_argument("--weights_dir", help="where the random weight files go (default: a temporary folder)")
  args = parser.parse_args()
  directory = pathlib.Path(args.weights_dir or tempfile.mkdtemp(prefix="fid_bench_weights_"))
  directory.mkdir(parents=True, exist_ok=True)
  made = make_weights(directory)
  result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "torch": torch.__version__, "threads": torch.get_num_threads(), **speed(made, args.batch, args.rounds),
            "weights": {name: {"file": str(path), "sha256": sha} for name, (path, sha) in
                        ((k, made[k]) for k in ("inception", "alexnet"))}}
  if args.workdir:
    result.update(eval_wall_time(made, args))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
