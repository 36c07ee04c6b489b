r"""Trains Pix2Pix; resumes by itself from the latest checkpoint in --workdir.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix --config.data.root=/path/to/v_2
  sar2optical-train --config=pix2pix --workdir=runs/pix2pix --config.data.root=/path/to/v_2

Several processes (one per host, or per GPU): --distributed on a Cloud TPU slice or under SLURM
(JAX finds its peers), else --coordinator_address=HOST:PORT --num_processes=N --process_id=I on
each; see docs/multihost.md.
"""

import sys

import jax
from absl import flags
from ml_collections import config_flags

from sar2optical import configs
from sar2optical.commands import cli
from sar2optical.core.errors import ConfigError
from sar2optical.training import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config: a file (configs/*.py), or a packaged "
                                          "config by name (pix2pix, pix2pix:paper, pix2pix:few_scenes, quickstart); "
                                          "--config.FIELD=VALUE sets one of its fields.", lock_config=True)
flags.declare_key_flag("config")  # ml_collections defines it: --help lists it with this module's flags
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Join a multi-process run: jax.distributed.initialize() with "
                                 "what JAX detects (Cloud TPU slices, SLURM, Open MPI); implied by --coordinator_address.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 of a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in [0, --num_processes).", lower_bound=0)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  del argv
  if _DISTRIBUTED.value or _COORDINATOR.value:
    try:
      jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    except (RuntimeError, ValueError) as error:
      raise ConfigError(f"--distributed/--coordinator_address: cannot join the multi-process run: {error}") from None
  cli.use_compilation_cache(_WORKDIR.value)
  loop.train(_CONFIG.value, _WORKDIR.value)


def run() -> None:
  sys.argv = configs.with_packaged_paths(sys.argv)
  cli.run(main)


if __name__ == "__main__":  # python -m sar2optical.commands.train
  run()
