"""Set-level measures beside the per-image distortion metrics, gathered batch by batch in eval's one pass.

A model can score well per pixel by predicting little (a blur, a colour near the mean) or look real and
score badly; these measures show where it sits between the two. All are computed on uint8 RGB images
read as [0, 1] (the generated images as `--save_images` writes them), at the size they are scored at.

Realism: how the set of images looks, whatever the pairing.

- high-frequency energy ratio = E(generated) / E(targets), E of a set the mean over every pixel, channel and
  image of the squared gradient magnitude |∇I|² = (I[y, x+1] − I[y, x])² + (I[y+1, x] − I[y, x])² (forward
  differences; a difference past the last column or row is 0). 1: as much fine detail as the truth; a
  blurred output → towards 0; a constant image has 0. None when the targets have no detail at all.
- colour distance = the mean over R, G, B of the Wasserstein-1 distance between the set's histograms of that
  channel's uint8 values (256 bins, bin k at k/255), generated against target: Σ_k |F_gen(k) − F_target(k)| / 255,
  F the cumulative fractions. In [0, 1]; 0: the same colour distribution.

Transfer: what the model predicts beyond a reference colour m (eval's: the mean training colour), over every
pixel of the set, per channel c (R, G, B):

- correlation_c = Σ (ŷ − m)(y − m) / √(Σ (ŷ − m)² · Σ (y − m)²): the predicted deviations from m against the
  true ones, about m (not re-centred on the set's own means, which would cancel m). > 0: the colours learnt
  elsewhere point the right way here; the squared error of m + s(ŷ − m) falls below the constant m's for some
  s > 0 only then, and the best s removes the fraction correlation_c² of it. ≤ 0: no shrinkage of the
  prediction towards m beats m itself. None when ŷ = m at every pixel (a prediction of exactly m).
- variance explained = 1 − Σ (y − ŷ)² / Σ (y − ȳ)² over every pixel and channel, ȳ the set's own mean colour
  (per channel): 1 for a perfect prediction, 0 for the constant ȳ, negative when worse than that constant.
"""

import numpy as np

CHANNELS = ("r", "g", "b")
_LEVELS = np.arange(256) / 255.0  # the value of each uint8 level in [0, 1]


def gradient_sum(images: np.ndarray) -> float:
  """Σ |∇I|² over uint8 (B, H, W, C) images read as [0, 1]: every horizontal and vertical neighbour difference²."""
  pixels = images.astype(np.float32)
  across, down = np.diff(pixels, axis=2).ravel(), np.diff(pixels, axis=1).ravel()
  return (float(across @ across) + float(down @ down)) / 255.0**2


def channel_histograms(images: np.ndarray) -> np.ndarray:
  """(C, 256) int64 counts of each channel's values in uint8 (..., C) images."""
  channels = images.reshape(-1, images.shape[-1])
  return np.stack([np.bincount(channels[:, c], minlength=256) for c in range(channels.shape[1])]).astype(np.int64)


def wasserstein_1(first: np.ndarray, second: np.ndarray) -> float:
  """W1 between two 256-bin histograms of uint8 values (bin k at k/255), in [0, 1] units: Σ_k |F₁(k) − F₂(k)| / 255."""
  first_cdf, second_cdf = (np.cumsum(h, dtype=np.float64) / np.sum(h) for h in (first, second))
  return float(np.sum(np.abs(first_cdf - second_cdf)) / 255.0)


def colour_distance(generated: np.ndarray, target: np.ndarray) -> float:
  """The mean over channels of `wasserstein_1` between (C, 256) histograms."""
  return float(np.mean([wasserstein_1(g, t) for g, t in zip(generated, target, strict=True)]))


def finite_or_none(value: float) -> float | None:
  """`value` as a JSON number; None for NaN or ±inf (an undefined measure)."""
  return float(value) if np.isfinite(value) else None


class ImageSet:
  """A set of uint8 RGB images, added batch by batch: Σ |∇I|², the number of pixel values, channel histograms."""

  def __init__(self) -> None:
    self.gradient_sum, self.values = 0.0, 0
    self.histograms = np.zeros((3, 256), np.int64)

  def add(self, images: np.ndarray) -> None:
    """uint8 (B, H, W, 3) images."""
    self.gradient_sum += gradient_sum(images)
    self.values += images.size
    self.histograms += channel_histograms(images)

  def add_constant(self, colours: np.ndarray, height: int, width: int) -> None:
    """B constant images of height × width, uint8 (B, 3) `colours`, without drawing them: no gradient, one bin each."""
    self.values += colours.size * height * width
    self.histograms += channel_histograms(colours) * (height * width)

  def measures(self, target: "ImageSet") -> dict[str, float | None]:
    """{"high_frequency_ratio", "colour_distance"} of this set against `target`'s images."""
    target_energy = target.gradient_sum / target.values
    return {"high_frequency_ratio": self.gradient_sum / self.values / target_energy if target_energy else None,
            "colour_distance": colour_distance(self.histograms, target.histograms)}


class Transfer:
  """A model's images and their targets, added batch by batch: the two sets, and Σ ŷ·y per channel (uint8 units)."""

  def __init__(self, reference: np.ndarray):
    self.reference = np.asarray(reference, np.float64)  # m: RGB in [0, 1]
    self.predicted, self.target = ImageSet(), ImageSet()
    self.cross = np.zeros(3)

  def add(self, predicted: np.ndarray, target: np.ndarray) -> None:
    """uint8 (B, H, W, 3) predictions and their targets."""
    self.predicted.add(predicted)
    self.target.add(target)
    products = predicted.astype(np.float32) * target  # exact: at most 255²
    self.cross += products.reshape(-1, 3).sum(axis=0, dtype=np.float64)

  def sums(self) -> dict[str, np.ndarray]:
    """Per channel, of p = ŷ − m and t = y − m in [0, 1] units: Σ pt, Σ p², Σ t², Σ t, and the pixel count n.

    Σ p², Σ t², Σ t come from the histograms about m, so a prediction of exactly m has Σ p² = 0 exactly."""
    deviation = _LEVELS[None, :] - self.reference[:, None]  # (3, 256): each level's value minus m
    n = self.target.values / 3
    predicted_sum = (self.predicted.histograms * _LEVELS).sum(axis=1)  # Σ ŷ
    target_sum = (self.target.histograms * _LEVELS).sum(axis=1)  # Σ y
    cross = self.cross / 255.0**2 - self.reference * (predicted_sum + target_sum) + n * self.reference**2
    return {"pt": cross, "pp": (self.predicted.histograms * deviation**2).sum(axis=1),
            "tt": (self.target.histograms * deviation**2).sum(axis=1),
            "t": (self.target.histograms * deviation).sum(axis=1), "n": np.asarray(n)}

  def correlation(self) -> np.ndarray:
    """(3,) Σ pt / √(Σ p² Σ t²) per channel; NaN or ±inf where undefined (p or t zero at every pixel)."""
    sums = self.sums()
    with np.errstate(divide="ignore", invalid="ignore"):
      return sums["pt"] / np.sqrt(sums["pp"] * sums["tt"])

  def variance_explained(self) -> float:
    """1 − Σ (y − ŷ)² / Σ (y − ȳ)² over every pixel and channel (NaN or −inf for constant targets)."""
    sums = self.sums()
    error = sums["pp"] - 2 * sums["pt"] + sums["tt"]  # Σ (p − t)² = Σ (ŷ − y)²
    spread = sums["tt"] - sums["t"] ** 2 / sums["n"]  # Σ (y − ȳ)²: t's spread about its own mean
    with np.errstate(divide="ignore", invalid="ignore"):
      return float(1 - error.sum() / spread.sum())

  def to_json(self) -> dict:
    """{"correlation": {"r", "g", "b", "mean"}, "variance_explained"}; None for an undefined value."""
    correlation = self.correlation()
    with np.errstate(invalid="ignore"):  # inf − inf: undefined, as its parts
      mean = np.mean(correlation)
    return {"correlation": {**{c: finite_or_none(v) for c, v in zip(CHANNELS, correlation, strict=True)},
                            "mean": finite_or_none(mean)},
            "variance_explained": finite_or_none(self.variance_explained())}


class Collector:
  """eval's batch sink (`Evaluator.score`'s on_batch): the realism of the model's images and of the floors'
  (`mean_colour` and `scene_colour`: those colours; `image_colour`: each target's own mean colour; `other_target`:
  the deranged targets), and the model's transfer beyond `mean_colour`. Colours are RGB in [0, 1]."""

  def __init__(self, mean_colour: np.ndarray, scene_colour: np.ndarray):
    self.colours = {name: np.rint(np.asarray(colour) * 255).astype(np.uint8)
                    for name, colour in (("mean_colour", mean_colour), ("scene_colour", scene_colour))}
    self.transfer = Transfer(mean_colour)
    self.sets = {"model": self.transfer.predicted,
                 **{name: ImageSet() for name in ("mean_colour", "other_target", "scene_colour", "image_colour")}}

  def __call__(self, index: np.ndarray, valid: np.ndarray, generated: np.ndarray, target: np.ndarray,
               other_target: np.ndarray | None) -> None:
    """One batch of uint8 NHWC images, padding rows marked invalid."""
    del index
    generated, target = generated[valid], target[valid]
    height, width = target.shape[1:3]
    self.transfer.add(generated, target)
    for name, colour in self.colours.items():
      self.sets[name].add_constant(np.broadcast_to(colour, (len(target), 3)), height, width)
    image_means = np.einsum("bpc->bc", target.reshape(len(target), -1, 3), dtype=np.float64) / (height * width)
    self.sets["image_colour"].add_constant(np.rint(image_means).astype(np.uint8), height, width)
    if other_target is not None:
      self.sets["other_target"].add(other_target[valid])

  def realism(self) -> dict[str, dict[str, float | None]]:
    """{"model" | floor: `ImageSet.measures`}; `other_target` only when floors were scored."""
    return {name: images.measures(self.transfer.target) for name, images in self.sets.items() if images.values}
