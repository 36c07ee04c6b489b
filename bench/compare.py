"""Alternates our JAX case and the PyTorch reference in fresh processes and prints the ratios.

The shared driver of bench/train_speed.py and bench/infer_speed.py: each round runs, for every
batch size, the references (--references: PyTorch eager, and/or `torch.compile` with inductor,
the seed's --compile) then ours, each in its own process; the report gives per-batch medians over
rounds and the ratio ours / each reference of images per second.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO.parent / "shared" / "bench" / "torch_seed_pix2pix.py"
#: The PyTorch reference's runs, by name: the seed's flags for each.
REFERENCES = {"eager": [], "compile": ["--compile"]}


def run_case(command: list[str]) -> dict:
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(mode: str, default_batches: str, default_references: str = "eager") -> None:
  parser = argparse.ArgumentParser(description=f"{mode} speed: ours against the PyTorch reference, same run")
  parser.add_argument("--batches", default=default_batches)
  parser.add_argument("--rounds", type=int, default=2, help="alternations of reference and ours")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--levels", type=int, default=8)
  parser.add_argument("--in-channels", type=int, default=3)
  parser.add_argument("--torch_reference", default=str(DEFAULT_REFERENCE))
  parser.add_argument("--references", default=default_references,
                      help=f"PyTorch runs to compare with, of {','.join(REFERENCES)} (compile: inductor, needs g++)")
  args = parser.parse_args()
  references = args.references.split(",")
  frameworks = [(f"torch_{name}", [args.torch_reference, *REFERENCES[name]]) for name in references]
  frameworks.append(("jax", [str(REPO / "bench" / "jax_case.py")]))
  common = ["--mode", mode, "--size", str(args.size), "--levels", str(args.levels), "--steps", str(args.steps),
            "--in-channels", str(args.in_channels)]
  runs: dict[tuple[str, int], list[dict]] = {}
  for round_index in range(args.rounds):
    for batch in map(int, args.batches.split(",")):
      for framework, command in frameworks:
        case = run_case([sys.executable, *command, *common, "--batch", str(batch)])
        case["round"] = round_index
        print(json.dumps(case), flush=True)
        runs.setdefault((framework, batch), []).append(case)
  summary = []
  for batch in map(int, args.batches.split(",")):
    ours = statistics.median(c["images_per_second"] for c in runs[("jax", batch)])
    row = {"mode": mode, "batch": batch, "size": args.size, "jax_images_per_second": ours,
           "jax_peak_rss_mb": max(c["peak_rss_mb"] for c in runs[("jax", batch)]),
           "jax_compile_and_first_call_s": statistics.median(c["compile_and_first_call_s"]
                                                             for c in runs[("jax", batch)])}
    for name in references:
      cases = runs[(f"torch_{name}", batch)]
      theirs = statistics.median(c["images_per_second"] for c in cases)
      row.update({f"torch_{name}_images_per_second": theirs, f"ratio_over_{name}": round(ours / theirs, 3),
                  f"torch_{name}_peak_rss_mb": max(c["peak_rss_mb"] for c in cases)})
    summary.append({**row, "rounds": args.rounds})
  print(json.dumps({"summary": summary}))
