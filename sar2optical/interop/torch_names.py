"""PyTorch SAR2Optical state_dict names and layouts ↔ our Flax variables, both ways.

A state_dict here is a plain mapping of names to numpy arrays (no torch needed). Flax module names
mirror the PyTorch tree, so each variable has exactly one PyTorch key:

  generator      enc{i}/conv/kernel        encoder.enc{i}.conv_block.0.weight   (O,I,kh,kw) → (kh,kw,I,O)
                 enc{i}/norm/{scale,bias}  encoder.enc{i}.conv_block.1.{weight,bias}
                 enc{i}/norm/{mean,var}    encoder.enc{i}.conv_block.1.running_{mean,var}
                 dec{i}/up/kernel          decoder.dec{i}.conv_block.0.weight   (I,O,kh,kw) → (kh,kw,O,I)
                 dec{i}/conv/kernel        decoder.dec{i}.conv_block.0.1.weight (upsampling variant)
                 head/{kernel,bias}        head.0.{weight,bias}
  discriminator  block{j}/…                model.model.{j}.conv_block.…
                 final/{kernel,bias}       model.model.{layers+1}.{weight,bias}
"""

from collections.abc import Mapping
from typing import Any

import flax
import numpy as np

from sar2optical.core.errors import CheckpointError

Variables = dict[str, Any]
#: The original generator's base width (`model.ngf`): its state_dicts hold no other.
ORIGINAL_NGF = 64
_NORM_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
_BATCHES_TRACKED = ".num_batches_tracked"  # kept by torch, not by us (see to_torch)


def _torch_key(collection: str, path: tuple[str, ...], discriminator_layers: int | None) -> str:
  """The PyTorch name of one Flax variable (`path` below the collection)."""
  module, *rest = path
  leaf = rest[-1]
  if discriminator_layers is None:
    if module.startswith("enc"):
      prefix = f"encoder.{module}.conv_block"
    elif module.startswith("dec"):
      prefix = f"decoder.{module}.conv_block"
    elif module == "head":
      return f"head.0.{'weight' if leaf == 'kernel' else 'bias'}"
    else:
      raise KeyError(path)
  else:
    if module == "final":
      return f"model.model.{discriminator_layers + 1}.{'weight' if leaf == 'kernel' else 'bias'}"
    prefix = f"model.model.{int(module.removeprefix('block'))}.conv_block"
  sub = rest[0]
  if sub == "norm":
    return f"{prefix}.1.{_NORM_NAMES[leaf]}"
  if sub == "up":
    return f"{prefix}.0.weight"
  if sub == "conv" and module.startswith("dec"):
    return f"{prefix}.0.1.weight"
  return f"{prefix}.0.{'weight' if leaf == 'kernel' else 'bias'}"


def _to_flax_layout(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
  """Conv (O,I,kh,kw) → (kh,kw,I,O); ConvTranspose (I,O,kh,kw) → (kh,kw,O,I): the same permutation."""
  return value.transpose(2, 3, 1, 0) if path[-1] == "kernel" else value


def _to_torch_layout(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
  """The inverse of `_to_flax_layout`: (kh,kw,I,O) → (O,I,kh,kw), (kh,kw,O,I) → (I,O,kh,kw)."""
  return value.transpose(3, 2, 0, 1) if path[-1] == "kernel" else value


def to_torch(variables: Variables, discriminator_layers: int | None = None,
             batches_tracked: int = 0) -> dict[str, np.ndarray]:
  """The PyTorch state_dict (names, layouts, float32) of Flax `variables` (`params`, `batch_stats`).

  The inverse of `from_torch`: `from_torch(to_torch(v), v) == v` bitwise. Each BatchNorm also gets
  its `num_batches_tracked` (int64, `batches_tracked`), which torch keeps but uses only with
  momentum=None (the original does not), so that `load_state_dict(strict=True)` accepts it.
  """
  state_dict = {}
  for (collection, *path), leaf in flax.traverse_util.flatten_dict(flax.core.unfreeze(variables)).items():
    key = _torch_key(collection, tuple(path), discriminator_layers)
    state_dict[key] = np.array(_to_torch_layout(tuple(path), np.asarray(leaf, np.float32)), order="C")  # own, writable
    if key.endswith(".running_mean"):
      state_dict[key.removesuffix(".running_mean") + _BATCHES_TRACKED] = np.array(batches_tracked, np.int64)
  return state_dict


def from_torch(state_dict: Mapping[str, np.ndarray], template: Variables,
               discriminator_layers: int | None = None) -> Variables:
  """Flax variables shaped like `template` (`params`, `batch_stats`) from a PyTorch state_dict.

  `discriminator_layers` is None for the generator, else the PatchGAN's `layers`. Raises
  CheckpointError listing every missing, unexpected or mis-shaped key by name.
  """
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(template))
  result, missing, misshaped, used = {}, [], [], set()
  for (collection, *path), leaf in flat.items():
    key = _torch_key(collection, tuple(path), discriminator_layers)
    if key not in state_dict:
      missing.append(key)
      continue
    used.add(key)
    value = _to_flax_layout(tuple(path), np.asarray(state_dict[key], np.float32))
    if value.shape != tuple(leaf.shape):
      misshaped.append(f"{key}: got {tuple(np.shape(state_dict[key]))}, expected one giving {tuple(leaf.shape)}")
      continue
    result[(collection, *path)] = value
  unexpected = sorted(k for k in state_dict if k not in used and not k.endswith(_BATCHES_TRACKED))
  problems = ([f"missing key {k}" for k in missing] + [f"unexpected key {k}" for k in unexpected]
              + [f"mis-shaped {m}" for m in misshaped])
  if problems:
    raise CheckpointError("state_dict does not fit the model: " + "; ".join(problems))
  return flax.traverse_util.unflatten_dict(result)
