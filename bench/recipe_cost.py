r"""Cost of a training step for each few-scene option, relative to the original's, in one run. Prints JSON.

  flock /tmp/cpu.lock python bench/recipe_cost.py [--image_size=128] [--levels=7] [--batch_size=8] \
      [--rounds=3] [--steps=5]

Each option of bench/few_scenes_ablation.py that changes the step (augmentation happens in the input
pipeline and costs nothing here) is compiled once; then the options take turns, --rounds times, each
timing --steps jit steps on random uint8 pairs (after one warm-up step, blocking on the result).
Reported: each option's median seconds per step over its rounds, and its ratio to the original's.
"""

import json
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from few_scenes_ablation import OPTIONS  # noqa: E402

from sar2optical.configs import fields, pix2pix  # noqa: E402
from sar2optical.model.pixels import PixelSpec  # noqa: E402
from sar2optical.training import mesh as mesh_lib  # noqa: E402
from sar2optical.training import recipe as recipe_lib  # noqa: E402
from sar2optical.training import state as state_lib  # noqa: E402
from sar2optical.training import step as step_lib  # noqa: E402

_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Pixels per side.")
_LEVELS = flags.DEFINE_integer("levels", 7, "U-Net levels.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Pairs per step.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Turns of every option.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per turn.")


def option_config(name: str) -> ml_collections.ConfigDict:
  """The config of one option of bench/few_scenes_ablation.py, at this benchmark's size."""
  config_path, overrides = OPTIONS[name]
  config = pix2pix.get_config(config_path.partition(":")[2])
  config.update_from_flattened_dict({**overrides, "image_size": _IMAGE_SIZE.value, "model.levels": _LEVELS.value,
                                     "batch_size": _BATCH_SIZE.value})
  return config


def step_options() -> dict[str, ml_collections.ConfigDict]:
  """{name: config} of the options whose train step differs from every earlier one's (data options cost nothing
  here: the input pipeline runs them; the seed changes no step)."""
  chosen = {}
  for name in OPTIONS:
    config = option_config(name)
    step_changes = {field: values for field, values in fields.changes(pix2pix.get_config(), config).items()
                    if not field.startswith("data.") and field != "seed"}
    if all(step_changes != seen for seen, _ in chosen.values()):
      chosen[name] = (step_changes, config)
  return {name: config for name, (_, config) in chosen.items()}


def compiled_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> list:
  """[jit step, fresh state] of `config`."""
  recipe = recipe_lib.make_recipe(config, PixelSpec())
  return [step_lib.jit_train_step(recipe, mesh),
          state_lib.create_state(recipe, mesh, 0, config.image_size, config.model.in_channels)]


def main(argv: list[str]) -> None:
  del argv
  mesh = mesh_lib.make_mesh(jax.local_devices()[:1])
  rng = np.random.default_rng(0)
  size, batch = _IMAGE_SIZE.value, _BATCH_SIZE.value
  pairs = {"sar": rng.integers(0, 256, (batch, size, size, 1), np.uint8),
           "optical": rng.integers(0, 256, (batch, size, size, 3), np.uint8)}
  runs = {name: compiled_step(config, mesh) for name, config in step_options().items()}
  seconds = {name: [] for name in runs}
  for _ in range(_ROUNDS.value):
    for name, run in runs.items():
      step, state = run
      state, metrics = step(state, pairs)
      jax.block_until_ready(metrics)
      start = time.perf_counter()
      for _ in range(_STEPS.value):
        state, metrics = step(state, pairs)
      jax.block_until_ready(metrics)
      seconds[name].append((time.perf_counter() - start) / _STEPS.value)
      run[1] = state
  base = statistics.median(seconds["original"])
  print(json.dumps({"image_size": size, "levels": _LEVELS.value, "batch_size": batch, "rounds": _ROUNDS.value,
                    "steps": _STEPS.value, "device": str(jax.devices()[0]),
                    "options": {name: {"median_s_per_step": statistics.median(values),
                                       "vs_original": statistics.median(values) / base, "rounds_s": values}
                                for name, values in seconds.items()}}, indent=1))


if __name__ == "__main__":
  app.run(main)
