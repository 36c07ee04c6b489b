"""Run by tests/test_training.py in a process with 8 simulated CPU devices: steps on 1 vs 8 devices.

Prints one JSON line with, for Adam (1 step) and for SGD (3 steps), the largest differences in
losses, BatchNorm statistics and parameters, and the fraction of parameters off by over 1e-5.
SGD's update is linear in the gradient, so it shows the sharded math itself over several steps;
Adam's normalisation turns float noise in a near-zero gradient into a full ±lr step.
"""

import dataclasses
import json

import jax
import numpy as np
import optax

from sar2optical.configs import pix2pix
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import mesh as mesh_lib
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib
from sar2optical.training import step as step_lib


def differences(a, b) -> np.ndarray:
  return np.concatenate([np.ravel(np.abs(x - y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])


def compare(model: recipe_lib.Recipe, steps: int) -> dict[str, float]:
  rng = np.random.default_rng(0)
  batches = [{"sar": rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8),
              "optical": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)} for _ in range(steps)]
  finals = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = mesh_lib.make_mesh(devices)
    state = state_lib.create_state(model, mesh, 0, 32, 1)
    step = step_lib.jit_train_step(model, mesh)
    losses = []
    for batch in batches:
      state, metrics = step(state, mesh_lib.global_batch(batch, mesh))
      losses.append(metrics)
    finals.append(jax.device_get((state, losses)))
  (one, one_losses), (many, many_losses) = finals
  params = differences((one.g_params, one.d_params), (many.g_params, many.d_params))
  return {
      "steps": steps,
      "max_rel_losses": float(np.max(differences(one_losses, many_losses)
                                     / np.abs(np.concatenate([np.ravel(x) for x in jax.tree.leaves(one_losses)])))),
      "max_abs_batch_stats": float(differences((one.g_stats, one.d_stats), (many.g_stats, many.d_stats)).max()),
      "max_abs_params": float(params.max()),
      "fraction_params_over_1e-5": float(np.mean(params > 1e-5)),
  }


def main() -> None:
  config = pix2pix.get_config()
  config.model.levels = 3
  adam = recipe_lib.make_recipe(config, PixelSpec())
  sgd = dataclasses.replace(adam, g_optimizer=optax.sgd(1e-4), d_optimizer=optax.sgd(1e-4))
  print(json.dumps({"devices": len(jax.devices()), "adam": compare(adam, 1), "sgd": compare(sgd, 3)}))


if __name__ == "__main__":
  main()
