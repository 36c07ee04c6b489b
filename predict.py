"""Translates SAR images or whole scenes of any size into optical RGB with a trained generator.

The program is sar2optical/commands/predict.py (console script sar2optical-predict); --help shows its usage."""

from sar2optical.commands import predict

__doc__ = predict.__doc__  # the usage that --help prints

if __name__ == "__main__":
  predict.run()
