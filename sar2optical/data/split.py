"""Moved in 0.2: sar2optical.data.splits (the command: sar2optical-split)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.data.splits", "split")
