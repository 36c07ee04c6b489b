"""Image-quality metrics via dm-pix (maintained by Google DeepMind), floors, and aggregation per class.

Inputs are float images in [0, 1] (the generator's float output mapped by `PixelSpec.to_unit`,
not the 8-bit PNG):

- PSNR = 10·log10(1 / MSE), data range 1, MSE over all pixels and channels of one image.
- SSIM (Wang et al. 2004): 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03, population
  (co)variances, computed per channel over the valid region (no padding) and averaged over pixels
  and channels — scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)`.
- MAE and RMSE over all pixels and channels of one image.

Floors put a model's numbers in context: the same metrics for a constant image of the mean training
colour, and for each target scored against another target of the same split (a seeded derangement).
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
      "ssim": dm_pix.ssim(prediction, target, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03),
      "mae": jnp.mean(jnp.abs(error), axis=(1, 2, 3)),
      "rmse": jnp.sqrt(jnp.mean(jnp.square(error), axis=(1, 2, 3))),
  }


def derangement(n: int, seed: int) -> np.ndarray:
  """A seeded permutation of range(n) with no fixed point (n ≥ 2): Sattolo's cyclic shuffle."""
  if n < 2:
    raise ValueError(f"a derangement needs at least 2 items, got {n}")
  order = np.arange(n)
  rng = np.random.default_rng(seed)
  for i in range(n - 1, 0, -1):
    j = int(rng.integers(0, i))
    order[i], order[j] = order[j], order[i]
  return order


def summarize(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
  """{metric: {"mean", "std"}} over images (population std)."""
  return {name: {"mean": float(np.mean(v)), "std": float(np.std(v))} for name, v in values.items()}


def aggregate(per_image: dict[str, np.ndarray], labels: Sequence[str]) -> dict:
  """{"n", "overall", "per_class"}: mean ± std over all images and over each class, each with n."""
  labels = np.asarray(labels)
  per_class = {}
  for label in sorted(set(labels.tolist())):
    mask = labels == label
    per_class[label or "(unlabelled)"] = {"n": int(mask.sum()),
                                          **summarize({k: v[mask] for k, v in per_image.items()})}
  return {"n": int(len(labels)), "overall": summarize(per_image), "per_class": per_class}
