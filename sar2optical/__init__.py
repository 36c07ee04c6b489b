"""sar2optical: Sentinel-1 SAR to Sentinel-2-like optical translation with Pix2Pix in JAX/Flax.

  import sar2optical
  translator = sar2optical.load("runs/pix2pix")   # a workdir, a step directory or an exported artifact
  rgb = translator.translate(sar)                 # numpy SAR (H, W) → uint8 RGB (H, W, 3)
  sar2optical.load("runs/pix2pix", tta=True)      # each tile averaged over its 8 flips and rotations

`load` and `Translator` (sar2optical.inference.translator) are imported on first use, so that importing a
part of the package (sar2optical.data, sar2optical.interop, ...) does not import the rest.
"""

import importlib
import importlib.metadata
from typing import Any

try:  # written by setuptools-scm when the package is installed (pip install -e . included): the git version
  from sar2optical._version import __version__
except ImportError:  # a checkout that was never installed
  try:
    __version__ = importlib.metadata.version("sar2optical")
  except importlib.metadata.PackageNotFoundError:
    __version__ = "0+unknown"

__all__ = ["load", "Translator"]


def __getattr__(name: str) -> Any:
  if name in __all__:
    return getattr(importlib.import_module("sar2optical.inference.translator"), name)
  raise AttributeError(f"module 'sar2optical' has no attribute {name!r}")


def __dir__() -> list[str]:
  return [*__all__, "__version__"]
