r"""Pix2Pix on SEN1-2 as the PyTorch SAR2Optical original trains it: 256², 8-level U-Net, batch 32.

  python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix --config.data.root=/path/to/v_2
  python train.py --config=configs/pix2pix.py:paper ...   # with the pix2pix paper's augmentation
  python train.py --config=configs/pix2pix.py:few_scenes ...   # few training scenes, realism first (LSGAN)
  python train.py --config=configs/pix2pix.py:accurate ...   # few training scenes, accuracy first (no GAN loss)

The config is packaged as sar2optical/configs/pix2pix.py (`sar2optical-train --config=pix2pix`).
"""

from sar2optical.configs.pix2pix import get_config  # noqa: F401  (what config_flags calls)
