"""The `python -m sar2optical.commands.demo_data` command (console script `sar2optical-demo-data`)."""

from absl import app, flags

from sar2optical.commands import cli
from sar2optical.data import synthetic as demo_lib
from sar2optical.data.synthetic import generate

__doc__ = demo_lib.__doc__  # the usage that --help prints: the module's own


FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("output", "demo_data", "Directory to write the synthetic demo set to.")
  flags.DEFINE_integer("pairs_per_class", 24, "SAR/optical pairs per land-cover class.")
  flags.DEFINE_integer("size", 256, "Side of each square patch in pixels.")
  flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives byte-identical images.")
  flags.DEFINE_enum("layout", "kaggle", demo_lib.LAYOUTS, "kaggle: <class>/s1, <class>/s2; original: SEN1-2's "
                    "season folders (ROIs9000_spring/s1_<scene>); same-name: <class>/A, <class>/B.")


def main(argv: list[str]) -> None:
  """Entry point of `python -m sar2optical.commands.demo_data`."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  n = generate(FLAGS.output, pairs_per_class=FLAGS.pairs_per_class, size=FLAGS.size, seed=FLAGS.seed,
               layout=FLAGS.layout)
  print(f"Wrote {n} synthetic SAR/optical pairs ({FLAGS.pairs_per_class} per class, "
        f"{FLAGS.size}x{FLAGS.size}) to {FLAGS.output}")


def run() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
