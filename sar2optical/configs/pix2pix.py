r"""Pix2Pix on SEN1-2 as the PyTorch SAR2Optical original trains it: 256², 8-level U-Net, batch 32.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix \
      --config.data.root=/path/to/v_2
  python train.py --config=configs/pix2pix.py:paper ...   # with the pix2pix paper's augmentation
  python train.py --config=configs/pix2pix.py:few_scenes ...   # the candidate recipe for few training scenes

`data.root` is a SEN1-2 folder in the Kaggle layout (`<class>/s1`, `<class>/s2`), the full SEN1-2 in its
season folders (`ROIs1158_spring/s1_1`, ...), or same-name folders (`s1/`+`s2/`, `A/`+`B/`); see
`data.scene_pattern` and `data.seasons`. Any field can be overridden on the command line, e.g.
`--config.batch_size=16 --config.num_train_steps=50000`.
"""

import ml_collections

from sar2optical import configuration
from sar2optical.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  """Defaults of the original: Adam 2e-4 (β1 0.5), λ_L1 100, 1-channel SAR, no augmentation.

  `configs/pix2pix.py:paper` adds the pix2pix paper's augmentation (jitter 286 → 256 and mirroring).
  `configs/pix2pix.py:few_scenes` is the candidate recipe for a handful of training scenes (README,
  "Few training scenes"): the paper's augmentation with top–bottom flips and 90° rotations, two
  PatchGAN scales with feature matching and LSGAN losses (pix2pixHD's), and an EMA of G's weights.
  Every field, its default and its meaning: `sar2optical.configuration.default_config`.
  """
  if variant not in ("", "paper", "few_scenes"):
    raise ConfigError(f"configs/pix2pix.py:{variant}: unknown variant; expected configs/pix2pix.py:paper or "
                      "configs/pix2pix.py:few_scenes")
  config = configuration.default_config()
  if variant in ("paper", "few_scenes"):
    config.data.augment = "paper"
  if variant == "few_scenes":
    config.data.vflip = config.data.rot90 = True
    config.model.disc_scales = 2
    config.loss.lambda_feat_match = 10.0
    config.loss.gan = "lsgan"
    config.model.ema_decay = 0.999
  return config
