"""The `python -m sar2optical.export` command (console script `sar2optical-export`)."""

from absl import flags

from sar2optical import cli
from sar2optical import export as export_lib
from sar2optical.export import DEFAULT_PLATFORMS, LOADER_NAME, PLATFORMS, export_workdir

__doc__ = export_lib.__doc__  # the usage that --help prints: the module's own


def _define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Workdir holding checkpoints/ (trained or converted).", required=True)
  flags.DEFINE_string("output", None, "The artifact to write; F.json and load_exported.py go beside it.",
                      required=True)
  flags.DEFINE_string("step", "latest", "Checkpoint step to export, or latest.")
  flags.DEFINE_list("platforms", list(DEFAULT_PLATFORMS),
                    f"Platforms the artifact runs on: some of {', '.join(PLATFORMS)}.")


def main(argv: list[str]) -> None:
  del argv
  values = flags.FLAGS
  output = export_workdir(values.workdir, values.output, values.step, tuple(values.platforms))
  print(f"exported -> {output} (+ {output.name}.json, {LOADER_NAME})")


if __name__ == "__main__":  # flags are defined here only, so that importing this module defines none
  _define_flags()
  cli.run(main)
