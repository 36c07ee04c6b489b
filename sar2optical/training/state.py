"""The training state: both networks, their BatchNorm statistics, optimizers, RNG, the NaN/Inf flag and,
when the recipe averages them, the generator's averaged variables.

A fresh state follows the original's initialisation; `abstract_state` describes it for restoring a
checkpoint onto any mesh.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp

from sar2optical.training import mesh as mesh_lib
from sar2optical.training.recipe import Recipe


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs besides the data iterator: both networks and optimizers."""
  step: jax.Array
  g_params: Any
  g_stats: Any
  d_params: Any
  d_stats: Any
  g_opt_state: Any
  d_opt_state: Any
  rng: jax.Array
  # The first step whose losses or gradients were NaN or Inf, 0 while all were finite: kept on the
  # device so that checking it costs no host sync per step (the loop reads it at log and
  # checkpoint boundaries, and never saves a state where it is set).
  nonfinite_step: jax.Array
  # With `recipe.ema_decay` > 0: {"params", "batch_stats"}, an exponential moving average of G's
  # parameters and BatchNorm statistics, the generator that eval, predict and export use. None
  # otherwise, and then absent from checkpoints (so those of earlier versions restore as they are).
  g_ema: Any = None


def inference_variables(state: TrainState) -> tuple[Any, Any]:
  """(params, batch_stats) of the generator that eval, predict, export and validation use: the average if kept."""
  if state.g_ema is None:
    return state.g_params, state.g_stats
  return state.g_ema["params"], state.g_ema["batch_stats"]


def started_at_colour(g_params: Any, colour: jax.typing.ArrayLike) -> Any:
  """G's parameters with the head's kernel 0 and bias atanh(`colour` clipped to ±0.999): its output is that colour.

  `colour` (3,) is in the model range, which tanh maps onto; G's other variables, and so its gradients
  into the head, are unchanged, so that the head learns structure from the first step on.
  """
  head = g_params["head"]
  bias = jnp.arctanh(jnp.clip(jnp.asarray(colour, jnp.float32), -0.999, 0.999))
  return {**g_params, "head": {**head, "kernel": jnp.zeros_like(head["kernel"]),
                               "bias": jnp.broadcast_to(bias, head["bias"].shape)}}


def init_state(recipe: Recipe, rng: jax.Array, image_size: int, in_channels: int,
               output_mean: jax.typing.ArrayLike | None = None) -> TrainState:
  """Fresh state: N(0, 0.02) conv kernels, N(1, 0.02) BatchNorm scales, zero biases; the average starts as G.

  `output_mean` (with `recipe.init_output_mean`): G's output colour at the start (`started_at_colour`).
  """
  g_key, d_key, rng = jax.random.split(rng, 3)
  sar = jnp.zeros((1, image_size, image_size, in_channels), jnp.float32)
  optical = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  g_vars = recipe.generator.init(g_key, sar, train=False)
  if output_mean is not None:
    g_vars = {**g_vars, "params": started_at_colour(g_vars["params"], output_mean)}
  d_vars = recipe.discriminator.init(d_key, sar, optical, train=False)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_vars["params"], g_stats=g_vars.get("batch_stats", {}),
      d_params=d_vars["params"], d_stats=d_vars.get("batch_stats", {}),
      g_opt_state=recipe.g_optimizer.init(g_vars["params"]),
      d_opt_state=recipe.d_optimizer.init(d_vars["params"]),
      rng=rng, nonfinite_step=jnp.zeros((), jnp.int32),
      g_ema={"params": g_vars["params"], "batch_stats": g_vars.get("batch_stats", {})} if recipe.ema_decay else None)


def create_state(recipe: Recipe, mesh: jax.sharding.Mesh, seed: int, image_size: int,
                 in_channels: int, output_mean: jax.typing.ArrayLike | None = None) -> TrainState:
  """A fresh state (`init_state`), initialised directly into its replicated sharding."""
  init = functools.partial(init_state, recipe, image_size=image_size, in_channels=in_channels)
  return jax.jit(init, out_shardings=mesh_lib.replicated(mesh))(jax.random.PRNGKey(seed), output_mean=output_mean)


def abstract_state(recipe: Recipe, mesh: jax.sharding.Mesh, image_size: int, in_channels: int) -> TrainState:
  """Shapes, dtypes and shardings of the state, for restoring a checkpoint onto `mesh`."""
  init = functools.partial(init_state, recipe, image_size=image_size, in_channels=in_channels)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  sharding = mesh_lib.replicated(mesh)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)
