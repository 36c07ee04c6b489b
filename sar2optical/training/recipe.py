"""The recipe of a Pix2Pix run: its networks, optimizers, losses and their weights, the generator's
weight average and the pixel mapping, made from a config.

Everything static about training lives in one `Recipe`; the arrays that change live in `TrainState`.
"""

import dataclasses
from typing import TYPE_CHECKING

import flax.linen as nn
import optax

from sar2optical.model import losses, networks
from sar2optical.model.generator import COMPUTE_DTYPES, make_generator
from sar2optical.model.pixels import PixelSpec

if TYPE_CHECKING:  # configs are ml_collections.ConfigDicts; read by attribute only, so not imported here
  import ml_collections

@dataclasses.dataclass(frozen=True)
class Recipe:
  """The static parts of training: networks, optimizers, losses and weights, EMA decay and pixel mapping.

  The original's recipe: `gan_loss` "bce", `lambda_gan` 1, `lambda_feat_match` 0 (no feature matching),
  `lambda_lowfreq` 0 (no low-frequency L2), `ema_decay` 0 (no average of G's weights: the state's `g_ema` is
  None), `init_output_mean` False (G's head initialised as every other conv; True: it starts at the training
  data's mean colour, `state.init_state`'s `output_mean`).
  """
  generator: nn.Module
  discriminator: nn.Module
  g_optimizer: optax.GradientTransformation
  d_optimizer: optax.GradientTransformation
  lambda_l1: float
  pixels: PixelSpec
  gan_loss: losses.GanLoss = "bce"
  lambda_feat_match: float = 0.0
  ema_decay: float = 0.0
  lambda_gan: float = 1.0
  lambda_lowfreq: float = 0.0
  lowfreq_pool: int = 8
  init_output_mean: bool = False

  @property
  def uses_discriminator(self) -> bool:
    """Whether G's loss reads D (its adversarial or feature-matching term): without, the step never runs D."""
    return bool(self.lambda_gan or self.lambda_feat_match)


def make_discriminator(model_config: "ml_collections.ConfigDict") -> nn.Module:
  """The pixel D, the original's PatchGAN, or (`disc_scales` > 1) pix2pixHD's multi-scale PatchGANs."""
  dtype = COMPUTE_DTYPES[model_config.dtype]
  if model_config.disc == "pixel":
    return networks.PixelDiscriminator(dtype=dtype)
  if model_config.disc_scales > 1:
    return networks.MultiScaleDiscriminator(model_config.disc_scales, model_config.disc_layers, dtype,
                                          model_config.disc_spectral_norm)
  return networks.PatchDiscriminator(layers=model_config.disc_layers, dtype=dtype,
                                   spectral_norm=model_config.disc_spectral_norm)


def learning_rate_schedule(config: "ml_collections.ConfigDict") -> optax.Schedule:
  """Constant, or constant then linear decay to 0 over the rest of training (the paper's)."""
  lr = config.optimizer.learning_rate
  if config.schedule.name == "constant":
    return optax.constant_schedule(lr)
  decay_start = int(config.num_train_steps * config.schedule.decay_start_fraction)
  return optax.join_schedules(
      [optax.constant_schedule(lr),
       optax.linear_schedule(lr, 0.0, max(config.num_train_steps - decay_start, 1))], [decay_start])


def make_recipe(config: "ml_collections.ConfigDict", pixels: PixelSpec) -> Recipe:
  """The networks of `config.model`, one Adam per network (the original's), the losses of `config.loss`."""
  def adam():
    return optax.adam(learning_rate_schedule(config), b1=config.optimizer.b1, b2=config.optimizer.b2, eps=1e-8)
  return Recipe(make_generator(config.model), make_discriminator(config.model), adam(), adam(),
                float(config.loss.lambda_l1), pixels, config.loss.gan, float(config.loss.lambda_feat_match),
                float(config.model.ema_decay), float(config.loss.lambda_gan), float(config.loss.lambda_lowfreq),
                int(config.loss.lowfreq_pool), bool(config.model.init_output_mean))
