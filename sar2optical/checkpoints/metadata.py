"""What a checkpoint records beside its arrays: the config, the pixel mapping (values and ground pixel), the step
and the versions that wrote it; `WORKDIR/config.json` for people.

The pixel mapping is two records, read back by inference (`restore`, exported artifacts): `pixels`, the
`PixelSpec` between uint8 and the model's range, and `pixel_scale`, the stored input pixels per model pixel
that training fitted pairs at (`config.data.fit`): side / image_size when pairs were resized, 1 when cropped.
"""

import importlib.metadata
from typing import Any

import ml_collections

from sar2optical.configs import fields
from sar2optical.core import storage
from sar2optical.model.pixels import PixelSpec

_VERSIONED = ("jax", "flax", "orbax-checkpoint")  # the packages a checkpoint's format depends on


def _own_version() -> str:
  """sar2optical's version as sar2optical.__version__ has it: from git (`+g<hash>` past a tag) where installed."""
  try:
    from sar2optical._version import __version__  # pylint: disable=g-import-not-at-top
  except ImportError:  # a checkout that was never installed: no _version.py
    try:
      return importlib.metadata.version("sar2optical")
    except importlib.metadata.PackageNotFoundError:
      return "0+unknown"
  return __version__


def versions() -> dict[str, str]:
  """{package: version} of sar2optical and the packages whose formats a checkpoint depends on."""
  return {"sar2optical": _own_version(), **{name: importlib.metadata.version(name) for name in _VERSIONED}}


def format_versions(recorded: dict[str, str]) -> str:
  return ", ".join(f"{name} {version}" for name, version in recorded.items())


def make_metadata(config: ml_collections.ConfigDict, pixels: PixelSpec, step: int,
                  pixel_scale: float = 1.0) -> dict[str, Any]:
  """The metadata item: step, config, pixel mapping, pixel scale and the versions() that write the checkpoint."""
  return {"step": step, "config": config.to_dict(), "pixels": pixels.to_dict(), "pixel_scale": pixel_scale,
          "versions": versions()}


def pixel_scale_of(metadata: dict[str, Any]) -> float:
  """Stored input pixels per model pixel of the checkpoint's generator; 1 where none was recorded (older ones)."""
  return float(metadata.get("pixel_scale", 1.0))


def write_config(workdir: storage.Path, config: ml_collections.ConfigDict) -> None:
  """`WORKDIR/config.json`: the run's config, for people to read (checkpoints carry their own copy)."""
  storage.write_whole(workdir / "config.json", config.to_json_best_effort(indent=2) + "\n")


def config_from_metadata(metadata: dict[str, Any]) -> ml_collections.ConfigDict:
  """The checkpoint's config; fields added since it was written have their defaults (the original's behaviour)."""
  return fields.with_defaults(metadata["config"])
