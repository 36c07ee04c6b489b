"""The one mapping between stored pixels (uint8) and the model's range, in both directions.

Every place that turns pixels into model inputs, or model outputs into pixels or metric inputs,
calls a `PixelSpec`. The spec is saved with each checkpoint (`to_dict`) and read back by eval and
predict (`from_dict`), so they can never disagree with training.
"""

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from sar2optical.errors import CheckpointError


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
