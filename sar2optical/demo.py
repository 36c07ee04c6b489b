"""Moved in 0.2: sar2optical.web.page (the command: sar2optical-demo)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.web.page", "demo")
