r"""A short CPU run at 64² with a 6-level U-Net on the synthetic demo set in ./demo_data.

  python -m sar2optical.commands.demo_data --output=demo_data
  python train.py --config=configs/quickstart.py --workdir=runs/quickstart

The config is packaged as sar2optical/configs/quickstart.py (`sar2optical-train --config=quickstart`).
"""

from sar2optical.configs.quickstart import get_config  # noqa: F401  (what config_flags calls)
