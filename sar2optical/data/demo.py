"""Moved in 0.2: sar2optical.data.synthetic (the command: sar2optical-demo-data)."""

from sar2optical import _moved

__getattr__ = _moved.forward(__name__, "sar2optical.data.synthetic", "demo_data")
