"""Moved in 0.2: sar2optical.inference.translator (sar2optical.load and sar2optical.Translator are the same)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.inference.translator")
