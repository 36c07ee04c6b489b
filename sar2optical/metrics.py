"""Image-quality metrics via dm-pix (maintained by DeepMind) and their aggregation per class.

Inputs are float images in [0, 1] (the generator's output mapped by `PixelSpec.to_unit`, not the
8-bit PNG). PSNR uses data range 1; SSIM is Wang et al.'s (11×11 Gaussian window, σ 1.5, K1 0.01,
K2 0.03, valid region), averaged over pixels and channels.
"""

from collections.abc import Sequence

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

METRICS = ("psnr", "ssim", "mae", "rmse")


def image_metrics(prediction: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
  """Per-image metrics of (B, H, W, C) images in [0, 1]; each value has shape (B,)."""
  error = prediction - target
  return {
      "psnr": dm_pix.psnr(prediction, target),
      "ssim": dm_pix.ssim(prediction, target, max_val=1.0),
      "mae": jnp.mean(jnp.abs(error), axis=(1, 2, 3)),
      "rmse": jnp.sqrt(jnp.mean(jnp.square(error), axis=(1, 2, 3))),
  }


def summarize(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
  """{metric: {"mean", "std"}} over images (population std)."""
  return {name: {"mean": float(np.mean(v)), "std": float(np.std(v))} for name, v in values.items()}


def aggregate(per_image: dict[str, np.ndarray], labels: Sequence[str]) -> dict:
  """Overall and per-class mean ± std, each with its number of images n."""
  labels = np.asarray(labels)
  per_class = {}
  for label in sorted(set(labels.tolist())):
    mask = labels == label
    per_class[label or "(unlabelled)"] = {"n": int(mask.sum()),
                                          **summarize({k: v[mask] for k, v in per_image.items()})}
  return {"n": int(len(labels)), "overall": summarize(per_image), "per_class": per_class}
