r"""Exports a workdir's networks as the original SAR2Optical's state_dicts: the inverse of `torch_import`.

  python -m sar2optical.commands.export --format=torch --workdir=runs/pix2pix --output=DIR [--step=latest]

Writes DIR/gen.safetensors and DIR/disc.safetensors (`safetensors.numpy`: no torch needed), then
DIR/gen.pth and DIR/disc.pth (`torch.save` of an OrderedDict of tensors, which
`torch.load(path, weights_only=True)` reads), each file whole or not at all. Keys, layouts and float32
values are the original's (`torch_names.to_torch`), BatchNorm's `num_batches_tracked` included (the
checkpoint's step), so the original's networks take them with `load_state_dict(strict=True)` and
`sar2optical-convert` reads either file back into the same variables, bitwise. The safetensors'
metadata hold `format: pt` and, under `sar2optical`, the step, image size, channels, pixel mapping and
model fields. Writing `.pth` needs torch: without it the safetensors are written and the error says so.
A run with a discriminator the original has no names for (the pixel one, several scales, spectral
norm) exports the generator only, saying why; one whose generator has other widths (`model.ngf` ≠ 64)
has no state_dict of the original's at all and is refused. A run that keeps an EMA of G exports the
average as `gen`.
"""

import collections
import json
import pathlib

import jax
import ml_collections
import numpy as np
import safetensors.numpy
from absl import logging

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import config_from_metadata
from sar2optical.core import storage
from sar2optical.core.errors import ConfigError
from sar2optical.inference.restore import TrainedGenerator
from sar2optical.interop import torch_names
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import mesh as mesh_lib
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib

StateDict = dict[str, np.ndarray]


def load_state(workdir: str | pathlib.Path, step: str | int = "latest") -> tuple[TrainedGenerator, state_lib.TrainState]:
  """The generator of `step` ('latest' or a number) and the whole TrainState it was restored from (D included)."""
  checkpoints = manager.Checkpoints(workdir, create=False)
  try:
    step = checkpoints.resolve_step(step)
    metadata = checkpoints.metadata(step)
    config = config_from_metadata(metadata)
    recipe = recipe_lib.make_recipe(config, PixelSpec.from_dict(metadata["pixels"]))
    mesh = mesh_lib.make_mesh(jax.local_devices()[:1])
    state = checkpoints.restore(step, state_lib.abstract_state(recipe, mesh, config.image_size,
                                                               config.model.in_channels))
  finally:
    checkpoints.close()
  return TrainedGenerator(config, recipe.pixels, step, recipe.generator, *state_lib.inference_variables(state)), state


def state_dicts(workdir: str | pathlib.Path, step: str | int = "latest") -> tuple[TrainedGenerator, dict[str, StateDict]]:
  """The generator of `step` and the original's state_dicts of its networks: {"gen": ..., "disc": ...}.

  "disc" is absent for a discriminator the original has no names for (`discriminator_unlike_original`).
  Raises ConfigError naming `config.model.ngf` for a generator of other widths than the original's.
  """
  generator, state = load_state(workdir, step)
  model = generator.config.model
  check_generator_like_original(model, f"--format=torch: {workdir}")
  result = {"gen": torch_names.to_torch({"params": generator.g_params, "batch_stats": generator.g_stats},
                                    batches_tracked=generator.step)}
  unlike_original = discriminator_unlike_original(model)
  if unlike_original:
    logging.warning("The discriminator (%s) has no state_dict names of the original's: exporting the generator only",
                    unlike_original)
  else:
    result["disc"] = torch_names.to_torch({"params": state.d_params, "batch_stats": state.d_stats}, model.disc_layers,
                                      generator.step)
  return generator, result


def check_generator_like_original(model: ml_collections.ConfigDict, what: str) -> None:
  """ConfigError naming `config.model.ngf` (and `what`) when the generator's widths are not the original's."""
  if model.ngf != torch_names.ORIGINAL_NGF:
    raise ConfigError(f"{what}: config.model.ngf is {model.ngf}, the original's generator has "
                      f"{torch_names.ORIGINAL_NGF}: no state_dict of the original's fits it (export "
                      "--format=stablehlo or onnx instead)")


def discriminator_unlike_original(model: ml_collections.ConfigDict) -> str:
  """What makes the discriminator of `model` (a config's fields) one the original has no names for; "" if none."""
  differences = [f"model.disc={model.disc}" if model.disc != "patch" else "",
                 f"model.disc_scales={model.disc_scales}" if model.disc_scales != 1 else "",
                 "model.disc_spectral_norm" if model.disc_spectral_norm else ""]
  return ", ".join(d for d in differences if d)


def _save_pth(state_dict: StateDict, path: pathlib.Path) -> None:
  import torch  # pylint: disable=g-import-not-at-top (optional: only .pth files need it)
  torch.save(collections.OrderedDict((key, torch.from_numpy(value)) for key, value in state_dict.items()), path)


def _torch_installed() -> bool:
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def export_torch(workdir: str | pathlib.Path, output: str | pathlib.Path,
                 step: str | int = "latest") -> list[pathlib.Path]:
  """Writes OUTPUT/{gen,disc}.safetensors, then OUTPUT/{gen,disc}.pth; returns the files written."""
  generator, networks = state_dicts(workdir, step)
  directory = storage.writable_directory(storage.local_path(output, "--output"), "--output")
  metadata = {"format": "pt", "sar2optical": json.dumps(generator.describe())}
  written = []
  for name, state_dict in networks.items():
    with storage.written_whole(directory / f"{name}.safetensors") as temporary:
      safetensors.numpy.save_file(state_dict, temporary, metadata=metadata)
    written.append(directory / f"{name}.safetensors")
  if not _torch_installed():
    raise ConfigError(f"--format=torch: writing {directory / 'gen.pth'} needs torch, which is not installed "
                      f"(pip install torch); written: {', '.join(map(str, written))}")
  for name, state_dict in networks.items():
    with storage.written_whole(directory / f"{name}.pth") as temporary:
      _save_pth(state_dict, temporary)
    written.append(directory / f"{name}.pth")
  logging.info("Exported step %d of %s as the original's state_dicts: %s", generator.step, workdir,
               ", ".join(map(str, written)))
  return written
