"""The one mapping between stored pixels (uint8) and the model's range, in both directions.

Every place that turns pixels into model inputs, or model outputs into pixels or metric inputs,
calls a `PixelSpec`. The spec is saved with each checkpoint (`to_dict`) and read back by eval and
predict (`from_dict`), so they can never disagree with training.

`SarScaling` brings calibrated Sentinel-1 backscatter (linear or dB) to the 8-bit convention of
SEN1-2, which the models are trained on: dB clipped to [-25, 0] and scaled to [0, 255].
"""

import dataclasses
import typing
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np

from sar2optical.core.errors import CheckpointError, ConfigError

SarUnits = Literal["uint8", "linear", "db"]
SAR_UNITS: tuple[str, ...] = typing.get_args(SarUnits)


@dataclasses.dataclass(frozen=True)
class PixelSpec:
  """Linear map of uint8 [0, 255] onto the model range [low, high] (Pix2Pix: [-1, 1], tanh output)."""
  low: float = -1.0
  high: float = 1.0

  @property
  def _scale(self) -> float:
    return (self.high - self.low) / 255.0

  def to_model(self, pixels: Any) -> jnp.ndarray:
    """uint8 (or integer-valued) pixels → float32 in [low, high]. Runs on the device under jit."""
    return jnp.asarray(pixels, jnp.float32) * self._scale + self.low

  def to_unit(self, values: Any) -> jnp.ndarray:
    """Model-range values → [0, 1], clipped (the range metrics use)."""
    return jnp.clip((jnp.asarray(values, jnp.float32) - self.low) / (self.high - self.low), 0.0, 1.0)

  def to_uint8(self, values: Any) -> np.ndarray:
    """Model-range values → uint8 pixels (rounded, clipped), on the host."""
    unit = np.clip((np.asarray(values, np.float32) - self.low) / (self.high - self.low), 0.0, 1.0)
    return np.rint(unit * 255.0).astype(np.uint8)

  def to_dict(self) -> dict[str, Any]:
    return {"kind": "linear_uint8", "low": self.low, "high": self.high}

  @classmethod
  def from_dict(cls, spec: dict[str, Any]) -> "PixelSpec":
    if spec.get("kind") != "linear_uint8":
      raise CheckpointError(f"pixel spec: unknown kind {spec.get('kind')!r} (expected 'linear_uint8')")
    return cls(low=float(spec["low"]), high=float(spec["high"]))


@dataclasses.dataclass(frozen=True)
class SarScaling:
  """Backscatter in `units` → SEN1-2 uint8: dB clipped to [db_min, db_max], scaled linearly to [0, 255].

  `uint8` inputs are already in that convention (SEN1-2 PNGs) and pass unchanged. `linear` (σ⁰ or γ⁰
  power) and `db` values are converted in float64. Pixels that cannot be backscatter — not finite,
  exactly 0 (the zero fill around a terrain-corrected scene) or, in linear units, negative — are
  reported invalid and set to 0.
  """
  units: SarUnits = "uint8"
  db_min: float = -25.0
  db_max: float = 0.0

  def __post_init__(self):
    if self.units not in SAR_UNITS:
      raise ConfigError(f"sar_units must be one of {', '.join(SAR_UNITS)}, got {self.units!r}")
    if not self.db_min < self.db_max:
      raise ConfigError(f"db_min ({self.db_min}) must be below db_max ({self.db_max})")

  def to_uint8(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 pixels, valid) for an array of backscatter values; invalid pixels are 0."""
    if self.units == "uint8":
      if values.dtype != np.uint8:
        raise ValueError(f"uint8 units need uint8 values, got {values.dtype}")
      return values, np.ones(values.shape, bool)
    values = np.asarray(values, np.float64)
    valid = np.isfinite(values) & (values != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
      if self.units == "linear":
        valid &= values > 0
        values = 10.0 * np.log10(values)
    unit = (np.clip(values, self.db_min, self.db_max) - self.db_min) / (self.db_max - self.db_min)
    pixels = np.rint(np.where(valid, unit, 0.0) * 255.0).astype(np.uint8)
    return pixels, valid
