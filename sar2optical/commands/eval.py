r"""Scores a workdir's checkpoints with PSNR, SSIM, MAE and RMSE, per class and overall, beside floors.

  python eval.py --workdir=runs/pix2pix [--split=test|val|train|all] [--steps=latest|best|all|N,M]
      [--mode=eval|train] [--tta] [--samples=K] [--data_root=DIR] [--seasons=fall] [--output_dir=DIR] [--output_json=F]
      [--fid [--fid_weights=PATH] [--fid_variant=standard|sar2optical]]
      [--lpips [--lpips_net=alex|vgg] [--lpips_backbone_weights=PATH] [--lpips_weights=PATH]] [--save_images]

FID/KID (pytorch-fid's Inception, torch-fidelity's KID) and LPIPS (v0.1) need local weight files:
flags, or SAR2OPTICAL_FID_WEIGHTS, SAR2OPTICAL_FID_TORCHVISION_WEIGHTS, SAR2OPTICAL_LPIPS_WEIGHTS
(default: the installed lpips package's), SAR2OPTICAL_LPIPS_BACKBONE_WEIGHTS. Nothing is downloaded.

--tta and --samples score the mean of each image's outputs over its 8 flips and rotations and over K
dropout samples (8 and K times the generator calls), as predict.py's flags of those names.

The config, pixel mapping and split come from the workdir. Results go to stdout and to
OUTPUT_DIR/step_N/{metrics.json,per_image.csv,grid.png} (default WORKDIR/eval/step_N/).
"""

import json
import pathlib

from absl import flags

from sar2optical.commands import cli
from sar2optical.evaluation import workflow
from sar2optical.model import generator as generator_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/ and split.json.")
_DATA_ROOT = flags.DEFINE_string("data_root", None, "SEN1-2 folder (Kaggle layout or flat s1/+s2/); default: the "
                                 "config's data.root.")
_DATA_SOURCE = flags.DEFINE_enum("data_source", "folder", ["folder", "tfds"], "folder: --data_root split by "
                                  "WORKDIR/split.json; tfds: a split of the sen1_2 build in --tfds_data_dir.")
_SEASONS = flags.DEFINE_string("seasons", None, "Only pairs of these seasons, e.g. fall (SEN1-2 names; with "
                               "--split=all, the seasons a run did not train on); default: the config's data.seasons.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "Where sen1_2 was built (empty: the TFDS default).")
_TFDS_CONFIG = flags.DEFINE_enum("tfds_config", "pixels", ["pixels", "png"], "The sen1_2 build's config.")
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "val", "train", "all"], "Which split of WORKDIR/split.json "
                           "(all: every pair under the data root).")
_STEPS = flags.DEFINE_string("steps", "latest", "latest, best (by validation PSNR), all, or checkpoint steps N[,M...].")
_MODE = flags.DEFINE_enum("mode", "eval", ["eval", "train"], "eval: running BatchNorm statistics, no dropout (the "
                          "original's default); train: batch statistics and dropout, as the pix2pix authors test.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per jit-compiled batch (recorded in the output).",
                                   lower_bound=1)
_TTA = flags.DEFINE_bool("tta", False, "Test-time augmentation: each generated image is the mean over its 8 flips "
                         "and rotations (8 times the generator calls; recorded in the output).")
_SAMPLES = flags.DEFINE_integer("samples", 1, "Each generated image is the mean of this many dropout samples (more "
                                "than 1: dropout on, in eval mode too; that many times the generator calls, 8 times "
                                "more with --tta; recorded in the output).")
_GRID_PAIRS = flags.DEFINE_integer("grid_pairs", 8, "Pairs shown in grid.png.", lower_bound=0)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where step_N/ folders go; default WORKDIR/eval.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the results here: the metrics of one step, "
                                   'or {"steps": [...]} for several.')
_FID = flags.DEFINE_boolean("fid", False, "Also FID and KID between the generated and target images, overall and per "
                            "class.")
_FID_VARIANT = flags.DEFINE_enum("fid_variant", "standard", ["standard", "sar2optical"], "standard: pytorch-fid's "
                                 "Inception (papers' FID); sar2optical: the original's (torchvision ImageNet "
                                 "Inception-v3 logits, resize 342 + crop 299).")
_FID_WEIGHTS = flags.DEFINE_string("fid_weights", None, "The Inception weights: pt_inception-2015-12-05-6726825d.pth "
                                   "(standard) or inception_v3_google-0cc3c7bd.pth (sar2optical); default "
                                   "$SAR2OPTICAL_FID_WEIGHTS / $SAR2OPTICAL_FID_TORCHVISION_WEIGHTS.")
_FID_WEIGHTS_SHA256 = flags.DEFINE_string("fid_weights_sha256", None, "Accept --fid_weights of this SHA-256 instead "
                                          "of the published file's (other weights, on purpose; recorded).")
_LPIPS = flags.DEFINE_boolean("lpips", False, "Also LPIPS v0.1 per image (and its mean ± std).")
_LPIPS_NET = flags.DEFINE_enum("lpips_net", "alex", ["alex", "vgg"], "LPIPS backbone.")
_LPIPS_WEIGHTS = flags.DEFINE_string("lpips_weights", None, "LPIPS v0.1 linear layers (alex.pth / vgg.pth); default "
                                     "$SAR2OPTICAL_LPIPS_WEIGHTS, else the installed lpips package's.")
_LPIPS_WEIGHTS_SHA256 = flags.DEFINE_string("lpips_weights_sha256", None, "Accept --lpips_weights of this SHA-256.")
_LPIPS_BACKBONE = flags.DEFINE_string("lpips_backbone_weights", None, "torchvision's alexnet-owt-7be5be79.pth / "
                                      "vgg16-397923af.pth; default $SAR2OPTICAL_LPIPS_BACKBONE_WEIGHTS.")
_LPIPS_BACKBONE_SHA256 = flags.DEFINE_string("lpips_backbone_weights_sha256", None, "Accept "
                                             "--lpips_backbone_weights of this SHA-256.")
_SAVE_IMAGES = flags.DEFINE_boolean("save_images", False, "Write the generated images as PNG to "
                                    "OUTPUT_DIR/step_N/images/<s1 path> and the targets' paths to targets.txt.")
flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
  del argv
  generator_lib.check_samples(_SAMPLES.value, "--samples")
  averaging = generator_lib.Averaging(_TTA.value, _SAMPLES.value)
  results = workflow.evaluate(_WORKDIR.value, data_root=_DATA_ROOT.value, split=_SPLIT.value, steps=_STEPS.value,
                                batch_size=_BATCH_SIZE.value, mode=_MODE.value, output_dir=_OUTPUT_DIR.value,
                                grid_pairs=_GRID_PAIRS.value, data_source=_DATA_SOURCE.value,
                                tfds_data_dir=_TFDS_DATA_DIR.value, tfds_config=_TFDS_CONFIG.value,
                                features=workflow.FeatureOptions(
                                    fid=_FID.value, lpips=_LPIPS.value, fid_variant=_FID_VARIANT.value,
                                    fid_weights=_FID_WEIGHTS.value, fid_weights_sha256=_FID_WEIGHTS_SHA256.value,
                                    lpips_net=_LPIPS_NET.value, lpips_weights=_LPIPS_WEIGHTS.value,
                                    lpips_weights_sha256=_LPIPS_WEIGHTS_SHA256.value,
                                    lpips_backbone_weights=_LPIPS_BACKBONE.value,
                                    lpips_backbone_weights_sha256=_LPIPS_BACKBONE_SHA256.value),
                                save_images=_SAVE_IMAGES.value, seasons=_SEASONS.value, averaging=averaging)
  for result in results:
    if averaging.on:
      print(f"averaging: {averaging.describe()}")
    print(workflow.format_table(result))
    print(f"{result['images_per_second']:.1f} images/s")
  if len(results) > 1:
    print("step        PSNR      SSIM       MAE")
    for result in results:
      overall = result["overall"]
      print(f"{result['step']:<8} {overall['psnr']['mean']:>8.3f}  {overall['ssim']['mean']:>8.4f}  "
            f"{overall['mae']['mean']:>8.4f}")
  if _OUTPUT_JSON.value:
    payload = results[0] if len(results) == 1 else {"steps": results}
    pathlib.Path(_OUTPUT_JSON.value).write_text(json.dumps(payload, indent=2) + "\n")


def run() -> None:
  cli.run(main)


if __name__ == "__main__":  # python -m sar2optical.commands.eval
  run()
