r"""Ablation of the few-scene recipes by leave-one-scene-out (docs/few_scenes.md). Prints one JSON object.

  flock /tmp/cpu.lock python bench/few_scenes_ablation.py --workdir=/tmp/ablation \
      [--data_root=../shared/data/sen1-2] [--options=original,augment,...] [--steps=300] [--held_out=A,B]

Every option is `python -m sar2optical.commands.crossval` with configs/pix2pix.py and the protocol's budget
(128², 7 levels, batch 8, --steps steps per fold, no validation; only the folds of --held_out's scene
groups, when given), the option's fields overridden on top of the original's recipe, and its crossval
flags (inference-time averaging); `original_seed_1`
is the original with another seed (initialisation, dropout, data order: how far two runs of one recipe
differ), `lsgan_seed_1` the chosen recipe with that seed; `combined` is the augmentation with
pix2pixHD's options (2 scales, feature matching, LSGAN) and an EMA, the first candidate;
configs/pix2pix.py:few_scenes is the `lsgan` row, which the protocol chose. Each option's folds live in
WORKDIR/<option>/ and resume like crossval (a finished fold is not redone), so a stopped ablation
continues where it stopped. The JSON holds, per option: mean ± std over folds of PSNR and SSIM, the
mean-colour floor's, the folds it beats the original on (both metrics), and its median training steps/s
(from each fold's metrics.jsonl) relative to the original's.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
from absl import app, flags

REPO = pathlib.Path(__file__).resolve().parents[1]
BUDGET = {"image_size": 128, "model.levels": 7, "batch_size": 8, "eval_every_steps": 0,
          "sample_every_steps": 100_000, "log_every_steps": 25}
AUGMENT = {"data.augment": "paper", "data.vflip": True, "data.rot90": True}
REGRESSION = {"loss.lambda_gan": 0.0, "model.init_output_mean": True, "model.ngf": 32}
OPTIONS = {  # name: (config file, overrides on top of it[, crossval flags])
    "original": ("configs/pix2pix.py", {}),
    "original_seed_1": ("configs/pix2pix.py", {"seed": 1}),  # the spread of the original between two seeds
    "augment": ("configs/pix2pix.py", AUGMENT),
    "ema": ("configs/pix2pix.py", {"model.ema_decay": 0.999}),
    "lsgan": ("configs/pix2pix.py", {"loss.gan": "lsgan"}),
    "lsgan_seed_1": ("configs/pix2pix.py", {"loss.gan": "lsgan", "seed": 1}),  # the chosen recipe's spread
    "hinge": ("configs/pix2pix.py", {"loss.gan": "hinge"}),
    "feat_match": ("configs/pix2pix.py", {"loss.lambda_feat_match": 10.0}),
    "disc_scales_2": ("configs/pix2pix.py", {"model.disc_scales": 2}),
    "spectral_norm": ("configs/pix2pix.py", {"model.disc_spectral_norm": True}),
    "combined": ("configs/pix2pix.py", {**AUGMENT, "model.disc_scales": 2, "loss.lambda_feat_match": 10.0,
                                        "loss.gan": "lsgan", "model.ema_decay": 0.999}),
    # the accuracy end: no adversarial loss, the output starting at the mean training colour, half the width
    "regression": ("configs/pix2pix.py", REGRESSION),
    "regression_lowfreq": ("configs/pix2pix.py", {**REGRESSION, "loss.lambda_lowfreq": 1000.0}),
    "regression_tta": ("configs/pix2pix.py", REGRESSION, ["--tta"]),  # scored as the mean over 8 flips/rotations
}



def define_flags() -> None:
  """The command's flags, defined when it runs (bench/recipe_cost.py imports OPTIONS from here)."""
  flags.DEFINE_string("workdir", None, "Holds one crossval workdir per option.", required=True)
  flags.DEFINE_string("data_root", str(REPO.parent / "shared" / "data" / "sen1-2"), "The pairs.")
  flags.DEFINE_list("options", list(OPTIONS), f"Options to run, in order, of: {', '.join(OPTIONS)}.")
  flags.DEFINE_integer("steps", 300, "Training steps per fold.")
  flags.DEFINE_list("held_out", [], "Scene groups whose folds to run (default: every group's).")


def run_option(name: str, workdir: pathlib.Path) -> dict:
  """Runs (or resumes) one option's cross-validation; returns its crossval.json."""
  config, overrides, *crossval_flags = OPTIONS[name]
  fields = {**BUDGET, "num_train_steps": flags.FLAGS.steps, "data.root": flags.FLAGS.data_root, **overrides}
  command = [sys.executable, "-m", "sar2optical.commands.crossval", f"--config={config}", f"--workdir={workdir}",
             f"--held_out={','.join(flags.FLAGS.held_out)}", *(crossval_flags[0] if crossval_flags else []),
             *(f"--config.{field}={value}" for field, value in fields.items())]
  subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
  return json.loads((workdir / "crossval.json").read_text())


def steps_per_second(workdir: pathlib.Path) -> float:
  """The median steps/s of every fold's logged windows (the compiling window excluded)."""
  rates = [record["steps_per_second"] for path in sorted(workdir.glob("folds/*/metrics.jsonl"))
           for record in map(json.loads, path.read_text().splitlines()) if "steps_per_second" in record]
  return float(np.median(rates))


def summary(result: dict, original: dict | None) -> dict:
  """mean ± std of PSNR/SSIM and the floor's, and the folds beating `original` on both metrics."""
  folds = {fold["held_out"]: fold["model"] for fold in result["folds"]}
  entry = {name: result["summary"][owner][name] for owner, name in [("model", "psnr"), ("model", "ssim")]}
  entry["floor"] = {name: result["summary"]["mean_colour"][name] for name in ("psnr", "ssim")}
  entry["folds"] = {held_out: {"psnr": values["psnr"], "ssim": values["ssim"]} for held_out, values in folds.items()}
  if original is not None:
    base = {fold["held_out"]: fold["model"] for fold in original["folds"]}
    entry["folds_beating_original"] = sum(folds[k]["psnr"] > base[k]["psnr"] and folds[k]["ssim"] > base[k]["ssim"]
                                          for k in folds)
  return entry


def main(argv: list[str]) -> None:
  del argv
  values = flags.FLAGS
  root = pathlib.Path(values.workdir).expanduser().resolve()
  results, report = {}, {"budget": {**BUDGET, "num_train_steps": values.steps}, "data_root": values.data_root,
                         "held_out": values.held_out or "every scene group"}
  for name in values.options:
    results[name] = run_option(name, root / name)
    report[name] = summary(results[name], results.get("original"))
    report[name]["steps_per_second"] = steps_per_second(root / name)
    if "original" in results:
      report[name]["cost_per_step_vs_original"] = (report["original"]["steps_per_second"]
                                                   / report[name]["steps_per_second"])
    print(json.dumps({name: report[name]}), file=sys.stderr, flush=True)
  print(json.dumps(report, indent=1))


if __name__ == "__main__":
  define_flags()
  app.run(main)
