r"""A short CPU run at 64² with a 6-level U-Net: the README's quickstart, a few minutes on a 2-core CPU.

  python -m sar2optical.commands.demo_data --output=demo_data
  python train.py --config=configs/quickstart.py --workdir=runs/quickstart

Defaults to the synthetic demo set (scores on it mean nothing); point it at real SEN1-2 with
`--config.data.root=/path/to/v_2`. It trains on random 64² windows of the 256² pairs at their stored
pixel (`data.fit="crop"`), so that predict.py, which tiles full-resolution scenes, shows the model what
it learned, and eval scores the pairs translated as predict.py translates them.
"""

import ml_collections

from sar2optical.configs import pix2pix


def get_config() -> ml_collections.ConfigDict:
  config = pix2pix.get_config()
  config.image_size = 64
  config.batch_size = 8
  config.num_train_steps = 200
  config.data.root = "demo_data"
  config.data.fit = "crop"  # the stored pixel: resizing 256² pairs to 64² would learn a 4× coarser one
  config.data.workers = 0  # 64² pairs decode faster than worker processes start
  config.model.levels = 6
  config.log_every_steps = 25
  config.checkpoint_every_steps = 100
  config.sample_every_steps = 100
  config.eval_every_steps = 100
  config.keep_checkpoints = 2
  return config
