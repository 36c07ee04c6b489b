r"""Pix2Pix on SEN1-2 as the PyTorch SAR2Optical original trains it: 256², 8-level U-Net, batch 32.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix \
      --config.data.root=/path/to/v_2
  python train.py --config=configs/pix2pix.py:paper ...   # with the pix2pix paper's augmentation
  python train.py --config=configs/pix2pix.py:few_scenes ...   # few training scenes, realism first (LSGAN)
  python train.py --config=configs/pix2pix.py:accurate ...   # few training scenes, accuracy first (no GAN loss)

`data.root` is a SEN1-2 folder in the Kaggle layout (`<class>/s1`, `<class>/s2`), the full SEN1-2 in its
season folders (`ROIs1158_spring/s1_1`, ...), or same-name folders (`s1/`+`s2/`, `A/`+`B/`); see
`data.scene_pattern` and `data.seasons`. Any field can be overridden on the command line, e.g.
`--config.batch_size=16 --config.num_train_steps=50000`.
"""

import ml_collections

from sar2optical.configs import fields
from sar2optical.core.errors import ConfigError

VARIANTS = ("", "paper", "few_scenes", "accurate")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  """Defaults of the original: Adam 2e-4 (β1 0.5), λ_L1 100, 1-channel SAR, no augmentation.

  `configs/pix2pix.py:paper` adds the pix2pix paper's augmentation (jitter 286 → 256 and mirroring).
  `configs/pix2pix.py:few_scenes` is the realism end for a handful of training scenes, chosen by
  leave-one-scene-out on the shared sample (docs/few_scenes.md): the original's with LSGAN
  losses (Mao et al. 2017), nothing else changed. `configs/pix2pix.py:accurate` is the accuracy end
  (PSNR/SSIM first), measured by the same protocol: no adversarial loss (the pix2pix paper's "L1 only"),
  the output starting at the training pairs' mean colour, half the generator's width (`model.ngf` 32).
  Every field, its default and its meaning: `sar2optical.configs.fields.default_config`.
  """
  if variant not in VARIANTS:
    raise ConfigError(f"configs/pix2pix.py:{variant}: unknown variant; expected one of "
                      + ", ".join(f"configs/pix2pix.py:{name}" for name in VARIANTS if name))
  config = fields.default_config()
  if variant == "paper":
    config.data.augment = "paper"
  if variant == "few_scenes":
    config.loss.gan = "lsgan"
  if variant == "accurate":
    config.loss.lambda_gan = 0.0
    config.model.init_output_mean = True
    config.model.ngf = 32
  return config
