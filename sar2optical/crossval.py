"""Moved in 0.2: sar2optical.evaluation.crossval (the command: sar2optical-crossval)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.evaluation.crossval", "crossval")
