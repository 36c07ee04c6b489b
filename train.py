r"""Trains Pix2Pix; resumes by itself from the latest checkpoint in --workdir.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix --config.data.root=/path/to/v_2
"""

from absl import flags
from ml_collections import config_flags

from sar2optical import cli, trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  del argv
  trainer.train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
