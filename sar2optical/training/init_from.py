"""`config.init_from`: a new run that starts from another workdir's trained networks (fine-tuning)."""

import pathlib
from typing import Any

import jax
import ml_collections

from sar2optical.checkpoints.manager import Checkpoints
from sar2optical.checkpoints.metadata import config_from_metadata
from sar2optical.configs import fields
from sar2optical.core.errors import CheckpointError, ConfigError


def initialise_from(workdir: str | pathlib.Path, state: Any, config: ml_collections.ConfigDict) -> tuple[Any, int]:
  """`state` with G's and D's parameters and BatchNorm statistics from the latest checkpoint of `workdir`.

  Everything else of `state` (step, optimizer moments, RNG) is kept, so a run starts afresh from
  trained networks. Returns the new state and the step it took them from. Raises ConfigError naming
  `config.init_from` when `workdir` has no checkpoint or its networks differ from `config`'s.
  """
  try:
    checkpoints = Checkpoints(workdir, create=False)
  except CheckpointError as error:
    raise ConfigError(f"config.init_from: {error}") from None
  try:
    step = checkpoints.resolve_step("latest")
    fields.check_networks_fit(config_from_metadata(checkpoints.metadata(step)), config,
                                     f"config.init_from: the networks at step {step} of {workdir}")
    abstract = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding), state)
    source = checkpoints.restore(step, abstract)
  except CheckpointError as error:
    raise ConfigError(f"config.init_from: {error}") from None
  finally:
    checkpoints.close()
  return state.replace(g_params=source.g_params, g_stats=source.g_stats, d_params=source.d_params,
                       d_stats=source.d_stats, g_ema=source.g_ema), step
