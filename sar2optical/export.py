"""Moved in 0.2: sar2optical.interop.stablehlo (the command: sar2optical-export)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.interop.stablehlo", "export")
