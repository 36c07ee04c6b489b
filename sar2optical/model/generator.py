"""The generator as everything after training uses it: the network a config's `model` fields make, and its
forward pass from uint8 SAR to the model range in an explicit mode, compiled once per network and mode.

`eval` mode: running BatchNorm statistics, no dropout (the original SAR2Optical's default, and ours).
`train` mode: batch statistics and dropout with a fixed key, as the pix2pix authors test; it needs
batches of at least MIN_TRAIN_MODE_BATCH, since BatchNorm's batch statistics of one image normalise it away.
Either mode may average outputs at inference (`Averaging`: flips and rotations, dropout samples).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from sar2optical.core.errors import ConfigError
from sar2optical.model import networks
from sar2optical.model.pixels import PixelSpec

if TYPE_CHECKING:  # configs are ml_collections.ConfigDicts; read by attribute only, so not imported here
  import ml_collections

Mode = Literal["eval", "train"]
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MIN_TRAIN_MODE_BATCH = 2

Forward = Callable[[Any, Any, jax.Array], jax.Array]  # (g_params, g_stats, uint8 SAR) → output in the model range


def make_generator(model_config: "ml_collections.ConfigDict") -> networks.UNetGenerator:
  return networks.UNetGenerator(levels=model_config.levels, upsampling=model_config.upsampling,
                                dropout_rate=model_config.dropout_rate, dtype=COMPUTE_DTYPES[model_config.dtype],
                                ngf=model_config.ngf)


def check_batch(batch_size: int, mode: Mode, what: str) -> None:
  """ConfigError naming `what` when `mode` is train and `batch_size` is below MIN_TRAIN_MODE_BATCH."""
  if mode == "train" and batch_size < MIN_TRAIN_MODE_BATCH:
    raise ConfigError(f"{what}: train-mode inference needs at least {MIN_TRAIN_MODE_BATCH} images a batch "
                      f"(BatchNorm batch statistics), got {batch_size}")


def generate(network: nn.Module, pixels: PixelSpec, g_params: Any, g_stats: Any, sar: jax.Array, *,
             train: bool = False, dropout_rng: jax.Array | None = None) -> jax.Array:
  """Generator output in the model range for uint8 SAR; eval mode by default (running statistics)."""
  x = pixels.to_model(sar)
  rngs = {"dropout": dropout_rng} if train else {}
  out = network.apply({"params": g_params, "batch_stats": g_stats}, x, train=train, rngs=rngs,
                      mutable=["batch_stats"] if train else False)
  return out[0] if train else out


def check_samples(samples: int, what: str) -> None:
  """ConfigError naming `what` when `samples` (dropout samples averaged) is below 1."""
  if samples < 1:
    raise ConfigError(f"{what}: the dropout samples averaged must be at least 1, got {samples}")


@dataclasses.dataclass(frozen=True)
class Averaging:
  """Inference-time averaging of the generator's outputs, in the model range (before any uint8 conversion).

  `dihedral`: the mean over the 8 flips and rotations g of the (square) tiles of g⁻¹(G(g(x))).
  `samples` K > 1: the mean over K dropout samples, dropout on in either mode (under eval mode's running
  statistics, Monte Carlo dropout; under train mode's batch statistics), sample k drawn with the key
  fold_in(PRNGKey(seed), k). K = 1 keeps the mode's own dropout: none in eval mode, PRNGKey(seed) in train mode.
  Both: the mean of all 8·K outputs, each flip or rotation drawn with the K keys. The generator runs `calls`
  times a batch; averaging off (the default) is one plain forward pass.
  """
  dihedral: bool = False
  samples: int = 1

  def __post_init__(self) -> None:
    check_samples(self.samples, "samples")

  @property
  def on(self) -> bool:
    return self.dihedral or self.samples > 1

  @property
  def calls(self) -> int:
    """Generator calls a batch costs: 8 with `dihedral`, times `samples`."""
    return (len(_D4) if self.dihedral else 1) * self.samples

  def describe(self) -> str:
    """One line: "off", or what is averaged and the generator calls it costs."""
    averaged = (["the 8 flips and rotations"] if self.dihedral else []) + (
        [f"{self.samples} dropout samples"] if self.samples > 1 else [])
    return f"mean over {' × '.join(averaged)} ({self.calls} generator calls a tile)" if self.on else "off"


def _dihedral(quarter_turns: int, flip: bool, x: jax.Array) -> jax.Array:
  """g(x) for g = (quarter_turns × 90° rotation) ∘ (left-right flip if `flip`), on the (H, W) axes of NHWC."""
  return jnp.rot90(jnp.flip(x, axis=2) if flip else x, quarter_turns, axes=(1, 2))


def _undo_dihedral(quarter_turns: int, flip: bool, y: jax.Array) -> jax.Array:
  """g⁻¹(y) of `_dihedral`'s g."""
  y = jnp.rot90(y, -quarter_turns, axes=(1, 2))
  return jnp.flip(y, axis=2) if flip else y


NO_AVERAGING = Averaging()  # one plain forward pass: the default everywhere

#: The dihedral group D4 as (g, g⁻¹) pairs, the identity first.
_D4 = tuple((functools.partial(_dihedral, turns, flip), functools.partial(_undo_dihedral, turns, flip))
            for flip in (False, True) for turns in range(4))


def dropout_keys(seed: int, samples: int) -> jax.Array:
  """The dropout keys of `Averaging`'s samples: PRNGKey(seed) for one, fold_in(PRNGKey(seed), k) for K > 1."""
  key = jax.random.PRNGKey(seed)
  if samples == 1:
    return key[None]
  return jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(samples))


def averaged(network: nn.Module, pixels: PixelSpec, g_params: Any, g_stats: Any, sar: jax.Array, *, train: bool,
             averaging: Averaging, seed: int) -> jax.Array:
  """The mean of `averaging`'s outputs in the model range: one generator call at a time (a `lax.scan`), so memory
  is one call's; in train mode each call has its own batch statistics."""
  x = pixels.to_model(sar)
  transforms = _D4 if averaging.dihedral else _D4[:1]
  keys = dropout_keys(seed, averaging.samples)
  dropout = True if averaging.samples > 1 else None  # None: the mode's own

  def one(g: jax.Array, key: jax.Array) -> jax.Array:
    seen = jax.lax.switch(g, [forward for forward, _ in transforms], x)
    out = network.apply({"params": g_params, "batch_stats": g_stats}, seen, train=train, dropout=dropout,
                        rngs={"dropout": key}, mutable=["batch_stats"] if train else False)
    return jax.lax.switch(g, [undo for _, undo in transforms], out[0] if train else out)

  def add(total: jax.Array, case: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
    return total + one(*case).astype(jnp.float32), None

  cases = (jnp.repeat(jnp.arange(len(transforms)), len(keys)), jnp.tile(keys, (len(transforms), 1)))
  shape = jax.eval_shape(one, cases[0][0], cases[1][0])
  total, _ = jax.lax.scan(add, jnp.zeros(shape.shape, jnp.float32), cases)
  return (total / averaging.calls).astype(shape.dtype)


def forward(network: nn.Module, pixels: PixelSpec, mode: Mode = "eval", seed: int = 0,
            averaging: Averaging = NO_AVERAGING) -> Forward:
  """`generate` in `mode` as a function of the variables and SAR, or with `averaging` on, `averaged`; train
  mode's dropout key comes from `seed`, as do those of the dropout samples."""
  train = mode == "train"
  if averaging.on:
    return functools.partial(averaged, network, pixels, train=train, averaging=averaging, seed=seed)
  dropout_rng = jax.random.PRNGKey(seed) if train else None
  return lambda g_params, g_stats, sar: generate(network, pixels, g_params, g_stats, sar, train=train,
                                                 dropout_rng=dropout_rng)


def jit_forward(network: nn.Module, pixels: PixelSpec, mode: Mode = "eval", seed: int = 0,
                averaging: Averaging = NO_AVERAGING) -> Forward:
  """The compiled `forward`: what predict, the API, eval's tiles, export checks, validation and sample grids call."""
  return jax.jit(forward(network, pixels, mode, seed, averaging))
