r"""Pix2Pix on SEN1-2 as the PyTorch SAR2Optical original trains it: 256², 8-level U-Net, batch 32.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix \
      --config.data.root=/path/to/v_2

`data.root` is a SEN1-2 folder in the Kaggle layout (`<class>/s1`, `<class>/s2`). Any field can be
overridden on the command line, e.g. `--config.batch_size=16 --config.num_train_steps=50000`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Defaults of the original: Adam 2e-4 (β1 0.5), λ_L1 100, 1-channel SAR, no augmentation."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.image_size = 256
  config.batch_size = 32  # global, over all devices and processes
  config.num_train_steps = 87_500  # ≈ 200 epochs of 14,000 training pairs

  config.data = ml_collections.ConfigDict()
  config.data.root = ""  # required: a SEN1-2 folder in the Kaggle layout
  config.data.split_file = ""  # split.json of the original; empty: a seeded 0.8/0.1/0.1 split by scene
  config.data.augment = "none"

  config.model = ml_collections.ConfigDict()
  config.model.in_channels = 1  # SEN1-2 SAR PNGs are single-band; 3 for the original's checkpoints
  config.model.levels = 8
  config.model.upsampling = "none"  # none (ConvTranspose) | nearest | bilinear
  config.model.dropout_rate = 0.5
  config.model.disc = "patch"  # patch | pixel
  config.model.disc_layers = 3

  config.loss = ml_collections.ConfigDict()
  config.loss.lambda_l1 = 100.0

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999

  config.schedule = ml_collections.ConfigDict()
  config.schedule.name = "constant"  # constant | linear_decay (constant, then linearly to 0: the paper's)
  config.schedule.decay_start_fraction = 0.5  # for linear_decay: where the decay starts

  config.log_every_steps = 50
  config.checkpoint_every_steps = 1000
  config.sample_every_steps = 1000
  config.keep_checkpoints = 3
  return config
