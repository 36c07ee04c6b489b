"""Feature metrics of one evaluation, filled batch by batch: Inception features of the generated and
target images and LPIPS per image; then FID/KID overall and per class, and the floors.

Both FID/KID sets are the uint8 images eval scores (the generated ones as `--save_images` writes
them), so clean-fid or pytorch-fid on those PNGs and the target files sees the same pixels. The
other-target floor's sets are the targets and their deranged partners (`metrics.derangement`):
overall that is the target set against itself (FID and KID ignore pairing: ≈ 0), per class the class's
targets against the targets paired with them.
"""

from collections.abc import Sequence

import numpy as np

from sar2optical.metrics import distances


class FeatureCollector:
  """Per-image Inception features and LPIPS values of `n` scored pairs; either network may be None."""

  def __init__(self, n: int, inception=None, lpips=None, mean_colour_uint8: np.ndarray | None = None):
    self.inception, self.lpips, self.mean_colour = inception, lpips, mean_colour_uint8
    self.features = {"generated": None, "target": None}
    self.lpips_values = {"model": np.zeros(n), "other_target": np.zeros(n), "mean_colour": np.zeros(n)}
    self.n = n

  def __call__(self, index: np.ndarray, valid: np.ndarray, generated: np.ndarray, target: np.ndarray,
               other_target: np.ndarray | None) -> None:
    """Scores one batch (uint8 NHWC, padding rows marked invalid); rows go to `index` (the valid rows' positions)."""
    if self.inception is not None:
      for name, images in (("generated", generated), ("target", target)):
        values = np.asarray(self.inception(images), np.float32)[valid]
        if self.features[name] is None:
          self.features[name] = np.zeros((self.n, values.shape[1]), np.float32)
        self.features[name][index] = values
    if self.lpips is not None:
      self.lpips_values["model"][index] = np.asarray(self.lpips(generated, target))[valid]
      if other_target is not None:
        self.lpips_values["other_target"][index] = np.asarray(self.lpips(other_target, target))[valid]
      if self.mean_colour is not None:
        constant = np.broadcast_to(self.mean_colour, target.shape).astype(np.uint8)
        self.lpips_values["mean_colour"][index] = np.asarray(self.lpips(constant, target))[valid]

  def set_distances(self, labels: Sequence[str], partner: np.ndarray | None) -> dict:
    """{"model": {"overall", "per_class"}, "other_target": ...}: FID and KID entries (JSON-ready), per class with n."""
    if self.inception is None:
      return {}
    generated, target = self.features["generated"], self.features["target"]
    results = {"model": _by_class(generated, target, labels)}
    if partner is not None:
      results["other_target"] = _by_class(target[partner], target, labels)
    return results


def _by_class(first: np.ndarray, second: np.ndarray, labels: Sequence[str]) -> dict:
  labels = np.asarray(labels)
  per_class = {}
  for label in sorted(set(labels.tolist())):
    mask = labels == label
    per_class[label or "(unlabelled)"] = _pair(first[mask], second[mask])
  return {"overall": _pair(first, second), "per_class": per_class}


def _pair(first: np.ndarray, second: np.ndarray) -> dict:
  return {"fid": distances.fid(first, second).to_json(), "kid": distances.kid(first, second).to_json()}


FID_CONVENTIONS = {
    "standard": {"network": "pytorch-fid InceptionV3([3]): FID Inception-v3 (TF 2015-12-05 weights), 2048-d pool3",
                 "resize": "uint8 RGB /255, bilinear to 299×299 (torch F.interpolate, align_corners=False, no "
                           "antialias), then 2x−1",
                 "convention": "pytorch-fid (torch-fidelity / clean-fid 'legacy_pytorch' mode use the same network)"},
    "sar2optical": {"network": "torchvision ImageNet Inception-v3 (IMAGENET1K_V1), 1000 logits, transform_input",
                    "resize": "uint8 RGB /255, bilinear (antialiased) to 342 on the shorter side, centre crop 299, "
                              "ImageNet mean/std",
                    "convention": "the original SAR2Optical project's FID: not comparable with papers' FID"},
}


def description(variant: str | None, fid_record: dict | None, lpips_net: str | None, lpips_record: dict | None) -> dict:
  """metrics.json's `feature_metrics`: networks, preprocessing, conventions and the weights' SHA-256."""
  out = {}
  if variant is not None:
    out["fid"] = {"variant": variant, **FID_CONVENTIONS[variant], "weights": fid_record,
                  "fid": "pytorch-fid calculate_frechet_distance (scipy sqrtm, eps 1e-6 fallback)",
                  "kid": {"kernel": "polynomial (x·y/d + 1)^3", "subsets": distances.KID_SUBSETS,
                          "subset_size": f"min({distances.KID_SUBSET_SIZE}, n)", "seed": distances.KID_SEED,
                          "estimator": "unbiased MMD² (torch-fidelity)"},
                  "sets": "generated vs target images of the split (uint8, at the model's size)"}
  if lpips_net is not None:
    out["lpips"] = {"net": lpips_net, "version": "0.1", "input": "uint8 → x/127.5 − 1, at the model's size",
                    "weights": lpips_record}
  return out
