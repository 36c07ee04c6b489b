"""Set distances between feature arrays: FID as pytorch-fid computes it, KID as torch-fidelity does.

FID (`fid`): the Fréchet distance between Gaussians fitted to the two sets (mean, `np.cov`),
‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2·sqrtm(Σ₁Σ₂)), with pytorch-fid's `calculate_frechet_distance`: scipy's
`sqrtm`, and if that is not finite, ε = 1e-6 added to both diagonals and sqrtm again; the real
part is kept when the imaginary one is negligible. With n ≤ d images the covariances are singular
(rank ≤ n − 1): the value is still what pytorch-fid returns, but biased and only comparable at the
same n; each result carries that warning.

KID (`kid`): torch-fidelity's unbiased MMD² with the polynomial kernel (x·y/d + 1)³, averaged over
random subsets drawn by `np.random.RandomState(seed).choice(n, size, replace=False)` (first set,
then second, per subset), with its defaults: 100 subsets of 1000 (capped here at the smaller n), seed 2020.
"""

import dataclasses
import warnings

import numpy as np
import scipy.linalg

FID_EPS = 1e-6
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
KID_SEED = 2020


@dataclasses.dataclass(frozen=True)
class Distance:
  """A set distance (None when undefined), the set sizes and what the reader must know about the value."""
  value: float | None
  n: tuple[int, int]
  warnings: tuple[str, ...] = ()
  std: float | None = None  # KID: the standard deviation over subsets

  def to_json(self) -> dict:
    entry = {"value": self.value, "n": list(self.n)}
    if self.std is not None:
      entry["std"] = self.std
    if self.warnings:
      entry["warnings"] = list(self.warnings)
    return entry


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (rows are samples, float64) of an (n ≥ 2, d) feature array, as pytorch-fid."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = FID_EPS) -> tuple[float, list[str]]:
  """pytorch-fid's `calculate_frechet_distance` and the notes on its fallbacks; never raises on imaginary parts."""
  notes = []
  diff = mu1 - mu2
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # scipy's singular-matrix and deprecation warnings: handled below
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
      notes.append(f"sqrtm(Σ1·Σ2) was not finite: {eps} added to both diagonals, as pytorch-fid does")
      offset = np.eye(sigma1.shape[0]) * eps
      covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      notes.append(f"sqrtm has an imaginary component up to {np.max(np.abs(covmean.imag)):.3g} (pytorch-fid raises "
                   "here); its real part is used")
    covmean = covmean.real
  value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
  return float(value), notes


def fid(features1: np.ndarray, features2: np.ndarray) -> Distance:
  """FID between two (n, d) feature sets; None with a warning when a set has fewer than 2 rows."""
  n = (len(features1), len(features2))
  if min(n) < 2:
    return Distance(None, n, (f"FID needs at least 2 images per set, got {min(n)}",))
  d = features1.shape[1]
  notes = []
  if min(n) <= d:
    notes.append(f"only {min(n)} images for {d} features: the covariances are singular (rank ≤ n − 1); the value "
                 f"is pytorch-fid's but biased upwards and comparable only at equal n (use > {d}, ideally ≥ 10000)")
  value, fallbacks = frechet_distance(*statistics(features1), *statistics(features2))
  return Distance(value, n, tuple(notes + fallbacks))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = KID_DEGREE, coef0: float = KID_COEF0) -> float:
  """Unbiased MMD² of two equal-size sets with the kernel (x·y/d + coef0)^degree (torch-fidelity's `mmd2`)."""
  m, gamma = len(x), 1.0 / x.shape[1]
  k_xx = (x @ x.T * gamma + coef0) ** degree
  k_yy = (y @ y.T * gamma + coef0) ** degree
  k_xy = (x @ y.T * gamma + coef0) ** degree
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return float(within - 2 * k_xy.sum() / (m * m))


def kid(features1: np.ndarray, features2: np.ndarray, *, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> Distance:
  """KID (mean and std of the subsets' MMD²); the subset size is capped at the smaller set, noted when it is."""
  n = (len(features1), len(features2))
  size = min(subset_size, *n)
  if size < 2:
    return Distance(None, n, (f"KID needs at least 2 images per set, got {min(n)}",))
  notes = () if size == subset_size else (f"subset size {size} (the smaller set), not torch-fidelity's {subset_size}",)
  features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
  rng = np.random.RandomState(seed)
  values = np.zeros(subsets)
  for i in range(subsets):
    x = features1[rng.choice(n[0], size, replace=False)]
    y = features2[rng.choice(n[1], size, replace=False)]
    values[i] = polynomial_mmd2(x, y)
  return Distance(float(values.mean()), n, notes, std=float(values.std()))
