"""`python -m sar2optical.data.split`: the split command, which lives in `sar2optical.commands.split`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("sar2optical.commands.split", run_name="__main__", alter_sys=True)
