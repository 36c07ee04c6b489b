r"""Pix2Pix on SEN1-2 as the PyTorch SAR2Optical original trains it: 256², 8-level U-Net, batch 32.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix \
      --config.data.root=/path/to/v_2
  python train.py --config=configs/pix2pix.py:paper ...   # with the pix2pix paper's augmentation
  python train.py --config=configs/pix2pix.py:few_scenes ...   # the recipe for few training scenes (LSGAN)

`data.root` is a SEN1-2 folder in the Kaggle layout (`<class>/s1`, `<class>/s2`), the full SEN1-2 in its
season folders (`ROIs1158_spring/s1_1`, ...), or same-name folders (`s1/`+`s2/`, `A/`+`B/`); see
`data.scene_pattern` and `data.seasons`. Any field can be overridden on the command line, e.g.
`--config.batch_size=16 --config.num_train_steps=50000`.
"""

import ml_collections

from sar2optical.configs import fields
from sar2optical.core.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  """Defaults of the original: Adam 2e-4 (β1 0.5), λ_L1 100, 1-channel SAR, no augmentation.

  `configs/pix2pix.py:paper` adds the pix2pix paper's augmentation (jitter 286 → 256 and mirroring).
  `configs/pix2pix.py:few_scenes` is the recipe for a handful of training scenes, chosen by
  leave-one-scene-out on the shared sample (docs/few_scenes.md): the original's with LSGAN
  losses (Mao et al. 2017), nothing else changed.
  Every field, its default and its meaning: `sar2optical.configs.fields.default_config`.
  """
  if variant not in ("", "paper", "few_scenes"):
    raise ConfigError(f"configs/pix2pix.py:{variant}: unknown variant; expected configs/pix2pix.py:paper or "
                      "configs/pix2pix.py:few_scenes")
  config = fields.default_config()
  if variant == "paper":
    config.data.augment = "paper"
  if variant == "few_scenes":
    config.loss.gan = "lsgan"
  return config
