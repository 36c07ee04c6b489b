"""Trains Pix2Pix; resumes by itself from the latest checkpoint in --workdir.

The program is sar2optical/commands/train.py (console script sar2optical-train); --help shows its usage."""

from sar2optical.commands import train

__doc__ = train.__doc__  # the usage that --help prints

if __name__ == "__main__":
  train.run()
