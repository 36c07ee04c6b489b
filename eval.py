"""Scores a workdir's checkpoints with PSNR, SSIM, MAE and RMSE, per class and overall, beside floors.

The program is sar2optical/commands/eval.py (console script sar2optical-eval); --help shows its usage."""

from sar2optical.commands import eval

__doc__ = eval.__doc__  # the usage that --help prints

if __name__ == "__main__":
  eval.run()
