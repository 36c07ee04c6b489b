r"""The web demo: a page in the browser that translates an uploaded SAR image with a trained generator.

  python -m sar2optical.commands.demo --workdir=runs/pix2pix [--step=latest] [--port=7860] [--host=127.0.0.1] \
      [--examples=FOLDER] [--max_upload_mb=400] [--max_pixels=100000000] [--max_queue=8] [--tta] [--samples=K]
                                          # serves http://127.0.0.1:7860 until Ctrl-C
  python -m sar2optical.commands.demo --workdir=runs/pix2pix --write_space=space/   # a Hugging Face Space, then exits

The page says what model it serves (step, network, training data, validation PSNR). Upload a SAR PNG,
JPEG or GeoTIFF (or click an example's thumbnail from --examples), choose its units, and see the SAR and
its translation side by side; download the PNG or the GeoTIFF (georeferenced like the input), the bytes
predict.py writes. Uploads, images and waiting requests beyond the limits are refused with a message in
the page and one line in the log; the server goes on. --tta and --samples average each tile's output, as
predict.py's flags of those names do (the page says so). Needs the optional extra: pip install
'sar2optical[demo]'.
"""

from absl import flags

import sar2optical
from sar2optical.commands import cli
from sar2optical.core.errors import ConfigError
from sar2optical.model import generator as generator_lib

_DEFAULT_PORT = 7860
_LIMITS = ("max_upload_mb", "max_pixels", "max_queue")  # flags named as page.Limits's fields


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so imports never clash."""
  flags.DEFINE_string("workdir", None, "A training workdir (its checkpoint at --step), a step directory "
                      "WORKDIR/checkpoints/<step> or an artifact of sar2optical-export.", required=True)
  flags.DEFINE_string("step", "latest", "With a workdir: the checkpoint step to use, or latest.")
  flags.DEFINE_string("host", "127.0.0.1", "Address to serve on; 0.0.0.0 makes the page reachable from other "
                      "machines.")
  flags.DEFINE_integer("port", _DEFAULT_PORT, "Port to serve on.", lower_bound=1, upper_bound=65535)
  flags.DEFINE_string("examples", None, "A folder of SAR images (e.g. SEN1-2 s1/ patches) offered as examples: "
                      "the first few by path, recursively.")
  # The limits' defaults are page.Limits's (None here: that module needs Gradio, flags are defined without it).
  flags.DEFINE_integer("max_upload_mb", None, "Largest upload accepted, in MiB (default 400); Gradio refuses a "
                       "larger one while it streams in.", lower_bound=1)
  flags.DEFINE_integer("max_pixels", None, "Most pixels (height × width) an image may declare (default 10,000², "
                       "100000000); larger ones are refused from their header, before anything is decoded.",
                       lower_bound=1)
  flags.DEFINE_integer("max_queue", None, "Most requests waiting behind the one translation that runs (default 8); "
                       "more at once are refused (Gradio's \"Queue is full\").", lower_bound=0)
  flags.DEFINE_bool("tta", False, "Test-time augmentation: each tile's output is the mean over its 8 flips and "
                    "rotations (8 times the generator calls).")
  flags.DEFINE_integer("samples", 1, "Each tile's output is the mean of this many dropout samples (more than 1: "
                       "dropout on, in eval mode too; that many times the generator calls, 8 times more with --tta).")
  flags.DEFINE_string("write_space", None, "Instead of serving: write a Hugging Face Space to this new folder "
                      "(app.py, README.md, requirements.txt, the package and the generator exported) and exit.")


def main(argv: list[str]) -> None:
  del argv
  values = flags.FLAGS
  generator_lib.check_samples(values.samples, "--samples")
  averaging = generator_lib.Averaging(values.tta, values.samples)
  from sar2optical.web import page, space
  if values.write_space:
    if averaging.on:
      raise ConfigError("--write_space: a Space serves the exported generator, which runs without --tta and --samples")
    app = space.write_space(values.workdir, values.write_space, values.step)
    print(f"wrote a Hugging Face Space -> {app.parent} (try it: cd {app.parent} && python app.py)")
    return
  examples = page.find_examples(values.examples) if values.examples else []
  translator = sar2optical.load(values.workdir, values.step, tta=values.tta, samples=values.samples)
  limits = {name: values[name].value for name in _LIMITS if values[name].value is not None}
  page.serve(translator, host=values.host, port=values.port, examples=examples, limits=page.Limits(**limits),
             about=page.About.of(values.workdir, translator))


def run() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
