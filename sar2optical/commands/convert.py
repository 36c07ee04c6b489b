"""The `python -m sar2optical.commands.convert` command (console script `sar2optical-convert`)."""

from absl import flags

from sar2optical.commands import cli
from sar2optical.interop import torch_import as convert_lib
from sar2optical.interop.torch_import import convert

__doc__ = convert_lib.__doc__  # the usage that --help prints: the module's own


def _define_flags() -> None:
  flags.DEFINE_string("torch_gen", None, "The original's generator state_dict (.pth, or .safetensors).", required=True)
  flags.DEFINE_string("torch_disc", None, "The original's discriminator state_dict (.pth, or .safetensors); default: a fresh one.")
  flags.DEFINE_string("output", None, "The workdir to create.", required=True)
  flags.DEFINE_enum("upsampling", None, ["none", "nearest", "bilinear"],
                    "Decoder upsampling: none = ConvTranspose (read from the keys when not given); nearest or "
                    "bilinear for the upsampling variant, which the keys cannot tell apart.")
  flags.DEFINE_integer("image_size", 256, "Side the model runs at (the original: 256).", lower_bound=1)
  flags.DEFINE_string("data_root", "", "SEN1-2 folder, stored as config.data.root for eval.py.")
  flags.DEFINE_string("split_file", "", "The original's split.json, copied to WORKDIR/split.json; default with "
                      "--data_root: a seeded split by scene.")


def main(argv: list[str]) -> None:
  del argv
  values = flags.FLAGS
  convert(values.torch_gen, values.output, torch_disc=values.torch_disc, upsampling=values.upsampling,
          image_size=values.image_size, data_root=values.data_root, split_file=values.split_file)
  print(f"converted -> {values.output}")


def run() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
