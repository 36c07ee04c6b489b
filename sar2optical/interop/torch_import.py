r"""Converts the PyTorch SAR2Optical checkpoints into a workdir that eval.py, predict.py and init_from use.

  python -m sar2optical.commands.convert --torch_gen=pix2pix_gen_180.pth [--torch_disc=pix2pix_disc_180.pth] \
      --output=runs/converted [--upsampling=none|nearest|bilinear] [--data_root=/path/to/v_2 [--split_file=F]]

The `.pth` state_dicts are read without torch and without executing pickled code (`pth_files`); a
`.safetensors` file (as `--format=torch` exports beside each `.pth`) is read with `safetensors.numpy`.
The generator's depth and SAR channels come from its keys (the original trained on 3-channel SAR);
its upsampling variant's keys do not say whether it resized by nearest or bilinear, so
`--upsampling` must; a generator of other widths than the original's (`model.ngf` 64) is refused. The
workdir gets `checkpoints/0/` (both networks, fresh optimizer states, the pixel mapping uint8 ↔ [-1, 1]
of the original's Normalize(0.5, 0.5)), `config.json`, and with
`--data_root` or `--split_file` the `split.json` that eval.py scores on (the original's split file
if given, else a seeded split by scene). Without `--torch_disc` the discriminator is initialised
afresh.
"""

import pathlib
import re
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import safetensors
import safetensors.numpy
from absl import logging

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import make_metadata, write_config
from sar2optical.configs import fields
from sar2optical.core import pth_files
from sar2optical.core.errors import CheckpointError, ConfigError
from sar2optical.data import resolve, splits
from sar2optical.interop import torch_names
from sar2optical.model.pixels import PixelSpec
from sar2optical.training.mesh import make_mesh
from sar2optical.training.recipe import make_recipe
from sar2optical.training.state import create_state

StateDict = Mapping[str, np.ndarray]

_ENCODER_WEIGHT = re.compile(r"encoder\.enc(\d+)\.conv_block\.0\.weight")
_FIRST_ENCODER_WEIGHT = "encoder.enc1.conv_block.0.weight"
_RESIZE_CONV_WEIGHT = "decoder.dec1.conv_block.0.1.weight"  # only in the upsampling variant
_PATCH_BLOCK_WEIGHT = re.compile(r"model\.model\.(\d+)\.conv_block\.0\.weight")
_FIRST_PATCH_WEIGHT = "model.model.0.conv_block.0.weight"


def read_state_dict(path: pathlib.Path) -> StateDict:
  """{name: array} of a `.safetensors` file, or of a `.pth` (any other name); CheckpointError naming the file."""
  if path.suffix != ".safetensors":
    return pth_files.load_state_dict(path)
  try:
    return safetensors.numpy.load_file(path)
  except (OSError, safetensors.SafetensorError) as error:
    raise CheckpointError(f"{path}: cannot be read as safetensors: {error}") from None


def generator_fields(state_dict: StateDict, path: pathlib.Path, upsampling: str | None) -> dict[str, Any]:
  """`model.levels`, `model.in_channels` and `model.upsampling` of a generator state_dict.

  `upsampling` is the user's choice (None: not given), checked against the variant the keys show.
  """
  first = state_dict.get(_FIRST_ENCODER_WEIGHT)
  if first is None or first.ndim != 4:
    raise CheckpointError(f"{path}: not a SAR2Optical generator state_dict (no 4-D {_FIRST_ENCODER_WEIGHT}); "
                          f"its first keys: {', '.join(list(state_dict)[:5])}")
  if first.shape[0] != torch_names.ORIGINAL_NGF:
    raise CheckpointError(f"{path}: its first encoder conv has {first.shape[0]} filters, the original's "
                          f"{torch_names.ORIGINAL_NGF} (config.model.ngf): not a state_dict of the original's")
  resizes = _RESIZE_CONV_WEIGHT in state_dict
  if upsampling is None and resizes:
    raise CheckpointError(f"{path}: holds the upsampling variant (key {_RESIZE_CONV_WEIGHT}), whose weights do not "
                          "say how it resized: pass --upsampling=nearest (the original's default) or bilinear")
  if upsampling is not None and resizes != (upsampling != "none"):
    variant = "upsampling (resize + 3×3 conv)" if resizes else "ConvTranspose"
    raise CheckpointError(f"{path}: --upsampling={upsampling} does not fit its weights, which are the {variant} "
                          "variant's")
  return {"levels": sum(1 for key in state_dict if _ENCODER_WEIGHT.fullmatch(key)),
          "in_channels": int(first.shape[1]), "upsampling": upsampling or "none"}


def discriminator_layers(state_dict: StateDict, path: pathlib.Path, in_channels: int) -> int:
  """The PatchGAN's `layers` (stride-2 blocks) of a discriminator state_dict for `in_channels` SAR."""
  first = state_dict.get(_FIRST_PATCH_WEIGHT)
  if first is None or first.ndim != 4:
    raise CheckpointError(f"{path}: not a SAR2Optical PatchGAN state_dict (no 4-D {_FIRST_PATCH_WEIGHT}); "
                          f"its first keys: {', '.join(list(state_dict)[:5])}")
  if first.shape[1] != in_channels + 3:
    raise CheckpointError(f"{path}: the discriminator takes {first.shape[1]} channels, but the generator's "
                          f"{in_channels}-channel SAR + 3 optical make {in_channels + 3}")
  return sum(1 for key in state_dict if _PATCH_BLOCK_WEIGHT.fullmatch(key)) - 1


def converted_config(generator: dict[str, Any], disc_layers: int, image_size: int, data_root: str,
                     split_file: str) -> ml_collections.ConfigDict:
  """The default config (as configs/pix2pix.py) with the converted networks' fields, validated (an empty data root is allowed)."""
  config = fields.default_config()
  config.image_size = image_size
  config.data.root = data_root
  config.data.split_file = split_file
  config.model.update(generator)
  config.model.disc_layers = disc_layers
  fields.validate(config, require_data_root=False)
  return config


def _load_variables(path: pathlib.Path, state_dict: StateDict, params: Any, stats: Any,
                    disc_layers: int | None = None) -> dict[str, Any]:
  """`torch_names.from_torch` onto `params` and `stats`, naming the file in its error."""
  try:
    return torch_names.from_torch(state_dict, {"params": params, "batch_stats": stats}, disc_layers)
  except CheckpointError as error:
    raise CheckpointError(f"{path}: {error}") from None


def convert(torch_gen: str | pathlib.Path, output: str | pathlib.Path, *, torch_disc: str | pathlib.Path | None = None,
            upsampling: str | None = None, image_size: int = 256, data_root: str = "",
            split_file: str = "") -> None:
  """Writes the workdir `output` (config, checkpoint at step 0, split if a data root or split file is given)."""
  output = pathlib.Path(output).resolve()
  if manager.checkpoint_dir(output).is_dir():
    raise CheckpointError(f"--output={output} already holds checkpoints; convert into a new folder")
  gen_path = pathlib.Path(torch_gen)
  gen_state_dict = read_state_dict(gen_path)
  generator = generator_fields(gen_state_dict, gen_path, upsampling)
  disc_path = pathlib.Path(torch_disc) if torch_disc else None
  disc_state_dict = read_state_dict(disc_path) if disc_path else None
  disc_layers = (discriminator_layers(disc_state_dict, disc_path, generator["in_channels"]) if disc_path
                 else fields.default_config().model.disc_layers)
  try:
    config = converted_config(generator, disc_layers, image_size, data_root, split_file)
  except ConfigError as error:
    raise ConfigError(f"converting {gen_path}: {error}") from None

  pixels = PixelSpec()  # the original's Normalize(mean 0.5, std 0.5): uint8 ↔ [-1, 1]
  recipe = make_recipe(config, pixels)
  mesh = make_mesh(jax.local_devices()[:1])
  state = create_state(recipe, mesh, config.seed, config.image_size, config.model.in_channels)
  g_vars = _load_variables(gen_path, gen_state_dict, state.g_params, state.g_stats)
  state = state.replace(g_params=g_vars["params"], g_stats=g_vars["batch_stats"])
  if disc_state_dict is not None:
    d_vars = _load_variables(disc_path, disc_state_dict, state.d_params, state.d_stats, disc_layers)
    state = state.replace(d_params=d_vars["params"], d_stats=d_vars["batch_stats"])
  else:
    logging.info("No --torch_disc: the discriminator is initialised afresh (seed %d)", config.seed)

  output.mkdir(parents=True, exist_ok=True)
  if data_root:
    resolve.resolve(config.data, output, seed=config.seed, record=True)
  elif split_file:
    splits.write_split(output / resolve.SPLIT_FILE, splits.read_split(split_file))
  else:
    logging.info("No --data_root or --split_file: no split.json, so eval.py cannot score this workdir "
                 "(predict.py can translate)")
  write_config(output, config)
  metadata = {**make_metadata(config, pixels, 0),
              "converted_from": {"torch_gen": str(gen_path.resolve()),
                                 "torch_disc": str(disc_path.resolve()) if disc_path else None}}
  checkpoints = manager.Checkpoints(output)
  checkpoints.save(0, state, None, metadata)
  checkpoints.wait()
  checkpoints.close()
  logging.info("Converted %s (levels %d, %d-channel SAR, upsampling %s) into %s", gen_path, config.model.levels,
               config.model.in_channels, config.model.upsampling, output)
