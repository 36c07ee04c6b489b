r"""Exports a workdir's generator as serialized StableHLO (`jax.export`) that runs without this project.

  python -m sar2optical.export --workdir=runs/pix2pix --output=exported/generator.jax \
      [--step=latest] [--platforms=cpu,cuda,tpu]

Writes, beside each other:

  F                  the serialized `jax.export.Exported`: uint8 SAR (b, S, S, C) → uint8 RGB (b, S, S, 3)
                     for any batch size b; eval mode (running BatchNorm statistics, no dropout), with the
                     weights and the pixel mapping (both directions) baked in
  F.json             what a caller needs: image size, channels, dtypes, pixel spec, step, platforms
  load_exported.py   a standalone loader (jax and numpy; Pillow for its PNG command line)

The loader is a file written next to the artifact rather than a function of this package, so that
whoever receives the artifact gets what runs it without installing sar2optical or its model code.
Each file is written whole or not at all.

The same command writes other formats (`--format`, default stablehlo):

  --format=onnx  --output=F.onnx   an ONNX model in the original's onnxruntime convention, and F.onnx.json
                                   (`sar2optical.onnx_export`; needs `pip install 'sar2optical[onnx]'`)
  --format=torch --output=DIR      the original's state_dicts: DIR/{gen,disc}.pth and .safetensors
                                   (`sar2optical.pytorch.export`; .pth needs torch)
"""

import json
import pathlib
import runpy
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from sar2optical import paths
from sar2optical.errors import CheckpointError, ConfigError
from sar2optical.pixels import PixelSpec
from sar2optical.trained_generator import TrainedGenerator, load_generator
from sar2optical.training.step import generate

LOADER_NAME = "load_exported.py"
FORMAT = "jax.export serialized StableHLO"
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")

LOADER_SOURCE = r'''"""Runs a generator exported by `python -m sar2optical.export`, with jax and numpy only.

  python load_exported.py generator.jax input.png output.png     # needs Pillow too

  from load_exported import load
  generator = load("generator.jax")     # reads generator.jax and generator.jax.json
  rgb = generator(sar)                  # uint8 (B, S, S, C) -> uint8 (B, S, S, 3), any B
"""

import json
import pathlib
import sys

import jax
import numpy as np


class ExportedGenerator:
  """The deserialized generator and its sidecar: `image_size`, `in_channels`, `step`, `spec`."""

  def __init__(self, path):
    path = pathlib.Path(path)
    self.spec = json.loads(pathlib.Path(f"{path}.json").read_text())
    self.image_size = self.spec["image_size"]
    self.in_channels = self.spec["in_channels"]
    self.step = self.spec["step"]
    self._exported = jax.export.deserialize(bytearray(path.read_bytes()))

  def __call__(self, sar):
    sar = np.asarray(sar)
    expected = (self.image_size, self.image_size, self.in_channels)
    if sar.dtype != np.uint8 or sar.ndim != 4 or sar.shape[1:] != expected:
      raise ValueError(f"expected uint8 SAR of shape (batch, {', '.join(map(str, expected))}), "
                       f"got {sar.dtype} {sar.shape}")
    return np.asarray(self._exported.call(sar))


def load(path):
  return ExportedGenerator(path)


def translate_png(generator, source, target):
  """One SAR image file -> an RGB PNG of its size (bilinear resizing to and from the model's size)."""
  from PIL import Image
  with Image.open(source) as image:
    grey = image.convert("L")
  size = (generator.image_size, generator.image_size)
  sar = np.asarray(grey.resize(size, Image.BILINEAR) if grey.size != size else grey, np.uint8)
  sar = np.repeat(sar[None, :, :, None], generator.in_channels, axis=-1)
  rgb = Image.fromarray(generator(sar)[0])
  (rgb.resize(grey.size, Image.BILINEAR) if rgb.size != grey.size else rgb).save(target)


if __name__ == "__main__":
  if len(sys.argv) != 4:
    sys.exit(f"usage: python {sys.argv[0]} ARTIFACT INPUT_IMAGE OUTPUT_PNG")
  translate_png(load(sys.argv[1]), sys.argv[2], sys.argv[3])
'''


def translate_fn(generator: TrainedGenerator):
  """uint8 SAR → uint8 RGB, on the device: the function that is exported."""
  def translate(sar: jax.Array) -> jax.Array:
    values = generate(generator.recipe, generator.g_params, generator.g_stats, sar)
    return jnp.round(generator.pixels.to_unit(values) * 255.0).astype(jnp.uint8)
  return translate


def export_generator(generator: TrainedGenerator,
                     platforms: tuple[str, ...] = DEFAULT_PLATFORMS) -> jax.export.Exported:
  """The generator exported for `platforms`, with a symbolic batch dimension."""
  (batch,) = jax.export.symbolic_shape("b")
  size = generator.image_size
  sar = jax.ShapeDtypeStruct((batch, size, size, generator.in_channels), jnp.uint8)
  return jax.export.export(jax.jit(translate_fn(generator)), platforms=platforms)(sar)


def sidecar(generator: TrainedGenerator, exported: jax.export.Exported) -> dict[str, Any]:
  return {"format": FORMAT, **generator.describe(),
          "input": {"shape": ["b", generator.image_size, generator.image_size, generator.in_channels],
                    "dtype": "uint8", "meaning": "SAR pixels, SEN1-2 8-bit convention"},
          "output": {"shape": ["b", generator.image_size, generator.image_size, 3], "dtype": "uint8",
                     "meaning": "RGB pixels"},
          "platforms": list(exported.platforms), "calling_convention_version": exported.calling_convention_version,
          "jax_version": jax.__version__}


def export_workdir(workdir: str | pathlib.Path, output: str | pathlib.Path, step: str | int = "latest",
                   platforms: tuple[str, ...] = DEFAULT_PLATFORMS) -> pathlib.Path:
  """Writes the artifact `output`, `output.json` and the loader beside them, each whole or not at all.

  Returns the artifact's path.
  """
  unknown = sorted(set(platforms) - set(PLATFORMS))
  if unknown or not platforms:
    raise ConfigError(f"--platforms: expected some of {', '.join(PLATFORMS)}, got {', '.join(platforms) or 'none'}")
  generator = load_generator(workdir, step)
  output = paths.writable_file(output, "--output")
  exported = export_generator(generator, platforms)
  paths.write_whole(output, exported.serialize())
  paths.write_whole(f"{output}.json", json.dumps(sidecar(generator, exported), indent=2) + "\n")
  paths.write_whole(output.parent / LOADER_NAME, LOADER_SOURCE)
  logging.info("Exported step %d of %s for %s to %s (%.1f MB), loader %s", generator.step, workdir,
               ", ".join(exported.platforms), output, output.stat().st_size / 1e6, output.parent / LOADER_NAME)
  return output


class ExportedGenerator:
  """An artifact of `export_workdir` read back as a tile generator (`translation.TileGenerator`).

  Its uint8 output is mapped back to the model's range, so predict's blending gives the artifact's
  pixels wherever tiles do not overlap, and within one level of the checkpoint's where they do.
  """

  def __init__(self, path: str | pathlib.Path):
    path = pathlib.Path(path)
    try:
      spec = json.loads(pathlib.Path(f"{path}.json").read_text())
      if spec.get("format") != FORMAT:
        raise ValueError(f"its sidecar's format is {spec.get('format')!r}, not {FORMAT!r}")
      self.pixels = PixelSpec.from_dict(spec["pixels"])
      self.step, self.image_size, self.in_channels = spec["step"], spec["image_size"], spec["in_channels"]
      self._exported = jax.export.deserialize(bytearray(path.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, CheckpointError) as error:
      raise CheckpointError(f"{path} is not an artifact that this version's export reads (F with F.json beside "
                            f"it, written by `sar2optical-export`): {error}") from None

  def __call__(self, sar: np.ndarray) -> jax.Array:
    """uint8 SAR (B, S, S, C) → the artifact's RGB in the model's range."""
    return self.pixels.to_model(self._exported.call(sar))


if __name__ == "__main__":  # the command lives in sar2optical.commands.export
  runpy.run_module("sar2optical.commands.export", run_name="__main__", alter_sys=True)
