"""`python -m sar2optical.demo`: the web demo (`sar2optical.web_demo`); the command lives in
`sar2optical.commands.demo`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("sar2optical.commands.demo", run_name="__main__", alter_sys=True)
