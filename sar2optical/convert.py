"""`python -m sar2optical.convert`: converts the original's `.pth` checkpoints (`sar2optical.pytorch.convert`);
the command lives in `sar2optical.commands.convert`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("sar2optical.commands.convert", run_name="__main__", alter_sys=True)
