r"""Pix2Pix on SEN1-2 as the PyTorch SAR2Optical original trains it: 256², 8-level U-Net, batch 32.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix \
      --config.data.root=/path/to/v_2
  python train.py --config=configs/pix2pix.py:paper ...   # with the pix2pix paper's augmentation

`data.root` is a SEN1-2 folder in the Kaggle layout (`<class>/s1`, `<class>/s2`). Any field can be
overridden on the command line, e.g. `--config.batch_size=16 --config.num_train_steps=50000`.
"""

import ml_collections

from sar2optical.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  """Defaults of the original: Adam 2e-4 (β1 0.5), λ_L1 100, 1-channel SAR, no augmentation.

  `configs/pix2pix.py:paper` adds the pix2pix paper's augmentation (jitter 286 → 256 and mirroring).
  """
  if variant not in ("", "paper"):
    raise ConfigError(f"configs/pix2pix.py:{variant}: unknown variant; expected configs/pix2pix.py:paper")
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.image_size = 256
  config.batch_size = 32  # global, over all devices and processes
  config.num_train_steps = 87_500  # ≈ 200 epochs of 14,000 training pairs
  config.init_from = ""  # a workdir whose latest G and D start a new run (fine-tuning); a checkpoint in --workdir wins

  config.data = ml_collections.ConfigDict()
  config.data.root = ""  # required: a SEN1-2 folder in the Kaggle layout
  config.data.split_file = ""  # split.json of the original; empty: a seeded 0.8/0.1/0.1 split by scene
  config.data.source = "folder"  # folder (data.root) | tfds (a sen1_2 build: python -m sar2optical.data.build_tfds)
  config.data.tfds_data_dir = ""  # where sen1_2 was built; empty: the TFDS default (~/tensorflow_datasets)
  config.data.tfds_config = "pixels"  # pixels (decoded uint8, fastest) | png
  config.data.augment = "none"  # none | paper (resize to 286/256 of the size, random crop, random left-right flip)
  config.data.vflip = False  # random top-bottom flips (valid for nadir imagery)
  config.data.rot90 = False  # random rotations by multiples of 90°
  config.data.workers = 8  # grain worker processes decoding and augmenting (0: threads of the training process)
  config.data.skip_bad = False  # skip (and count) undecodable records instead of stopping with the file's path

  config.model = ml_collections.ConfigDict()
  config.model.in_channels = 1  # SEN1-2 SAR PNGs are single-band; 3 for the original's checkpoints
  config.model.levels = 8
  config.model.upsampling = "none"  # none (ConvTranspose) | nearest | bilinear
  config.model.dropout_rate = 0.5
  config.model.disc = "patch"  # patch | pixel
  config.model.disc_layers = 3
  config.model.dtype = "float32"  # computation dtype; bfloat16 for mixed precision (params, optimizer, losses stay float32)

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
  if variant == "paper":
    config.data.augment = "paper"
  return config
