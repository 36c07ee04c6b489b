"""The `python -m sar2optical.commands.crossval` command (console script `sar2optical-crossval`)."""

import sys

from absl import flags
from ml_collections import config_flags

from sar2optical import configs
from sar2optical.commands import cli
from sar2optical.core import storage
from sar2optical.evaluation import crossval as crossval_lib
from sar2optical.evaluation import workflow
from sar2optical.model import generator as generator_lib

__doc__ = crossval_lib.__doc__  # the usage that --help prints: the module's own


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  config_flags.DEFINE_config_file("config", None, "Training config of every fold: a file (configs/*.py), or a packaged "
                                  "config by name (pix2pix:few_scenes, quickstart, ...); --config.FIELD=VALUE sets "
                                  "one of its fields.", lock_config=True)
  flags.declare_key_flag("config")  # ml_collections defines it: --help lists it with this module's flags
  flags.DEFINE_string("workdir", None, "Holds folds/<group>/ (one training workdir each) and crossval.json.")
  flags.DEFINE_list("held_out", [], "Scene groups whose folds to run (default: every group's).")
  flags.DEFINE_integer("batch_size", 8, "Images per batch when scoring the held-out groups.", lower_bound=1)
  flags.DEFINE_boolean("lpips", False, "Also LPIPS v0.1 (AlexNet) per image; weights as for eval.py "
                       "($SAR2OPTICAL_LPIPS_BACKBONE_WEIGHTS or --lpips_backbone_weights).")
  flags.DEFINE_string("lpips_backbone_weights", None, "torchvision's alexnet-owt-7be5be79.pth.")
  flags.DEFINE_boolean("fid", False, "Also FID and KID of each held-out group (few images: comparable only at equal "
                       "n); weights as for eval.py ($SAR2OPTICAL_FID_WEIGHTS or --fid_weights).")
  flags.DEFINE_string("fid_weights", None, "pytorch-fid's pt_inception-2015-12-05-6726825d.pth.")
  flags.DEFINE_bool("tta", False, "Score each held-out image as the mean of the model's outputs over its 8 flips and "
                    "rotations, as eval.py (8 times the generator calls).")
  flags.DEFINE_integer("samples", 1, "Score each held-out image as the mean of this many dropout samples, as eval.py "
                       "(that many times the generator calls).")
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  del argv
  values = flags.FLAGS
  cli.use_compilation_cache(values.workdir)
  features = workflow.FeatureOptions(fid=values.fid, lpips=values.lpips, fid_weights=values.fid_weights,
                                       lpips_backbone_weights=values.lpips_backbone_weights)
  generator_lib.check_samples(values.samples, "--samples")
  result = crossval_lib.crossval(values.config, values.workdir, held_out=values.held_out,
                                 batch_size=values.batch_size, features=features,
                                 averaging=generator_lib.Averaging(values.tta, values.samples))
  print(crossval_lib.format_summary(result))
  print(f"-> {storage.as_path(values.workdir, 'the workdir') / crossval_lib.RESULT_FILE}")


def run() -> None:
  sys.argv = configs.with_packaged_paths(sys.argv)
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
