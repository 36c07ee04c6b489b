"""The `python -m sar2optical.commands.check` command (console script `sar2optical-check`)."""

import sys

from absl import flags

from sar2optical.commands import cli
from sar2optical.data import check as check_lib
from sar2optical.data.check import check_folder, format_report

__doc__ = check_lib.__doc__  # the usage that --help prints: the module's own


FLAGS = flags.FLAGS

def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("root", None, "The data root: Kaggle SEN1-2 (<class>/s1, <class>/s2, or s1/ and s2/), "
                      "same-name folders (s1/ and s2/, or A/ and B/), or SEN1-2's season folders.")
  flags.DEFINE_integer("image_size", 256, "Expected side of every image; 0 accepts any size.",
                       lower_bound=0)
  flags.DEFINE_integer("threads", 8, "Images decoded at once by each process.", lower_bound=1)
  flags.DEFINE_integer("workers", 1, "Processes decoding images (1: this one).", lower_bound=1)
  flags.DEFINE_string("scene_pattern", "", "Regex with a `scene` group, searched in SAR file names, that groups "
                      "problems by scene; empty: SEN1-2 names.")
  flags.mark_flag_as_required("root")


def main(argv: list[str]) -> None:
  del argv
  report = check_folder(FLAGS.root, image_size=FLAGS.image_size, threads=FLAGS.threads, workers=FLAGS.workers,
                        scene_pattern=FLAGS.scene_pattern)
  print("\n".join(format_report(report, FLAGS.root)))
  if report.problems:
    sys.exit(1)


def run() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
