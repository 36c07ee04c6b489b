r"""Exports a workdir's generator as serialized StableHLO (`jax.export`) that runs without this project.

  python -m sar2optical.commands.export --workdir=runs/pix2pix --output=exported/generator.jax \
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
                                   (`sar2optical.interop.onnx_graph`; needs `pip install 'sar2optical[onnx]'`)
  --format=torch --output=DIR      the original's state_dicts: DIR/{gen,disc}.pth and .safetensors
                                   (`sar2optical.interop.torch_export`; .pth needs torch)
"""

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
from absl import logging

from sar2optical.core import storage
from sar2optical.core.errors import ConfigError
from sar2optical.inference import artifact
from sar2optical.inference.restore import TrainedGenerator, load_generator
from sar2optical.model.generator import generate

LOADER_NAME = artifact.LOADER.name
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")



def translate_fn(generator: TrainedGenerator):
  """uint8 SAR → uint8 RGB, on the device: the function that is exported."""
  def translate(sar: jax.Array) -> jax.Array:
    values = generate(generator.network, generator.pixels, generator.g_params, generator.g_stats, sar)
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
  return {"format": artifact.FORMAT, **generator.describe(),
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
  output = storage.writable_file(output, "--output")
  exported = export_generator(generator, platforms)
  storage.write_whole(output, exported.serialize())
  storage.write_whole(f"{output}.json", json.dumps(sidecar(generator, exported), indent=2) + "\n")
  storage.write_whole(output.parent / LOADER_NAME, artifact.LOADER.read_text())
  logging.info("Exported step %d of %s for %s to %s (%.1f MB), loader %s", generator.step, workdir,
               ", ".join(exported.platforms), output, output.stat().st_size / 1e6, output.parent / LOADER_NAME)
  return output
