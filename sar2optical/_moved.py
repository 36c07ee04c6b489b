"""The import and `python -m` paths of version 0.1 that moved in 0.2: each still works, with a DeprecationWarning,
until 0.3 (CHANGELOG.md lists them). An old path's module is two lines that call `forward`."""

import importlib
import runpy
import warnings
from collections.abc import Callable
from typing import Any


def forward(old: str, new: str, command: str | None = None) -> Callable[[str], Any]:
  """The `__getattr__` of the old module `old`, which reads names from `new`; run as `python -m old`, it runs
  `sar2optical.commands.<command>` (the old path of a command) after the warning."""
  where = f"`sar2optical-{command.replace('_', '-')}` or `python -m sar2optical.commands.{command}`" if command else new
  if old == "__main__":
    warnings.warn(f"this `python -m` path moved: use {where}; the old one goes in 0.3", DeprecationWarning, 2)
    runpy.run_module(f"sar2optical.commands.{command}", run_name="__main__", alter_sys=True)
  else:
    warnings.warn(f"{old} moved to {new}; the old path goes in 0.3", DeprecationWarning, 3)

  def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module(new), name)
  return __getattr__
