"""Moved in 0.2: sar2optical.interop.torch_import (the command: sar2optical-convert)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.interop.torch_import", "convert")
