r"""Scores a workdir's checkpoints with PSNR, SSIM, MAE and RMSE, overall and per class.

  python eval.py --workdir=runs/pix2pix [--split=test] [--steps=latest|all|N,M] [--output_json=F]

The config, pixel mapping and split are read from the workdir; results go to stdout,
WORKDIR/eval/step_N/metrics.json and per_image.csv.
"""

import json
import pathlib

from absl import flags

from sar2optical import cli, evaluation

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/ and split.json.")
_DATA_ROOT = flags.DEFINE_string("data_root", None, "SEN1-2 folder; default: the config's data.root.")
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "val", "train", "all"], "Which split of WORKDIR/split.json.")
_STEPS = flags.DEFINE_string("steps", "latest", "latest, all, or checkpoint steps N[,M...].")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the results here: the metrics of one step, "
                                   'or {"steps": [...]} for several.')
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per jit-compiled batch.", lower_bound=1)
flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
  del argv
  results = evaluation.evaluate(_WORKDIR.value, data_root=_DATA_ROOT.value, split=_SPLIT.value,
                                steps=_STEPS.value, batch_size=_BATCH_SIZE.value)
  for result in results:
    print(evaluation.format_table(result))
  if len(results) > 1:
    print("step   " + "  ".join(f"{m:>8}" for m in ("psnr", "ssim")))
    for result in results:
      print(f"{result['step']:<6} {result['overall']['psnr']['mean']:>8.3f}  {result['overall']['ssim']['mean']:>8.4f}")
  if _OUTPUT_JSON.value:
    payload = results[0] if len(results) == 1 else {"steps": results}
    pathlib.Path(_OUTPUT_JSON.value).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
  cli.run(main)
