"""Generates a small synthetic SEN1-2-like demo set, so a fresh clone can run the quickstart.

By default the set uses the Kaggle SEN1-2 layout of the real data:
`OUT/<class>/s1/ROIs9000_demo_s1_<scene>_p<patch>.png` (8-bit grey backscatter) and its twin
`OUT/<class>/s2/ROIs9000_demo_s2_<scene>_p<patch>.png` (8-bit RGB). `--layout=original` writes
SEN1-2's own season folders instead, one per class (agri → spring, barrenland → summer, grassland
→ fall, urban → winter): `OUT/ROIs9000_spring/s1_<scene>/ROIs9000_spring_s1_<scene>_p<patch>.png`
and its twin in `s2_<scene>/`; `--layout=same-name` writes pix2pix-style folders
`OUT/<class>/A/<class>_<scene>_p<patch>.png` and `OUT/<class>/B/` (the same name). Each pair is rendered from
one land-cover map. The optical image colours the map. The SAR image gives each cover a
backscatter (double bounce at building walls, dark water and radar shadow, brighter slopes
that face the sensor), multiplies in 4-look gamma speckle and scales [-25, 0] dB to 0..255,
as SEN1-2 does.

  python -m sar2optical.commands.demo_data --output=demo_data [--pairs_per_class=24] [--size=256] \
      [--layout=kaggle|original|same-name]
"""

import pathlib
from typing import Callable

import numpy as np
from PIL import Image

from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data import pairs as pairs_lib
from sar2optical.model.pixels import SarScaling

CLASSES = ("agri", "barrenland", "grassland", "urban")
LAYOUTS = ("kaggle", "original", "same-name")

_ROI = "ROIs9000"
_SEASON = "demo"
_PATCHES_PER_SCENE = 3
_LOOKS = 4
_DB_MIN, _DB_MAX = -25.0, 0.0
_README_TITLE = "# SYNTHETIC sar2optical demo data"

# Land covers: name, Sentinel-2 true colour (0..255), Sentinel-1 VV backscatter (dB).
_MATERIALS = (
    ("water", (30, 50, 70), -22.0),
    ("crop", (70, 115, 45), -11.0),
    ("maize", (45, 85, 35), -8.0),
    ("stubble", (190, 170, 105), -15.0),
    ("ploughed", (125, 95, 70), -9.0),
    ("meadow", (105, 140, 65), -12.5),
    ("shrub", (45, 75, 38), -7.5),
    ("soil", (165, 135, 100), -14.0),
    ("road", (115, 115, 112), -17.0),
    ("roof_light", (190, 188, 182), -7.0),
    ("roof_red", (150, 95, 80), -8.0),
    ("roof_grey", (125, 128, 133), -9.0),
)
_M = {name: i for i, (name, _, _) in enumerate(_MATERIALS)}
_RGB = np.array([rgb for _, rgb, _ in _MATERIALS], dtype=np.float64)
_DB = np.array([db for _, _, db in _MATERIALS])

# Barren terrain palettes: (sand, rock) colour pairs.
_BARREN_PALETTES = (
    ((205, 180, 140), (125, 110, 95)),
    ((185, 170, 145), (130, 128, 125)),
    ((195, 150, 110), (150, 100, 80)),
)

# A renderer maps (scene rng, patch rng, size) to optical RGB (0..255) and backscatter (dB).
_Rendered = tuple[np.ndarray, np.ndarray]
_Renderer = Callable[[np.random.Generator, np.random.Generator, int], _Rendered]


def _noise(rng: np.random.Generator, size: int, scale: float, octaves: int = 4) -> np.ndarray:
  """Fractal value noise, zero mean and unit std; `scale` is the coarsest feature size in px."""
  out = np.zeros((size, size))
  for k in range(octaves):
    cells = max(1, int(np.ceil(size * 2**k / scale)))
    grid = rng.standard_normal((cells + 1, cells + 1))
    t = np.arange(size) * (cells / size)
    i = t.astype(int)
    f = t - i
    f = f * f * (3 - 2 * f)
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    out += 0.5**k * (rows[:, i] * (1 - f) + rows[:, i + 1] * f)
  return (out - out.mean()) / (out.std() + 1e-9)


def _rotated(rng: np.random.Generator, size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
  """Pixel coordinates rotated by `angle` and shifted by a random offset."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  c, s = np.cos(angle), np.sin(angle)
  du, dv = rng.uniform(0, 1000, 2)
  return x * c + y * s + du, -x * s + y * c + dv


def _cuts(rng: np.random.Generator, lo: float, hi: float, mean: float) -> np.ndarray:
  """Random increasing cut positions covering [lo, hi], spaced about `mean` apart."""
  n = int((hi - lo) / (0.5 * mean)) + 3
  steps = np.cumsum(rng.uniform(0.5, 1.5, n) * mean)
  return lo - rng.uniform(0, mean) + np.concatenate([[0.0], steps])


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """`mask` moved by (dy, dx) pixels, padded with False."""
  out = np.zeros_like(mask)
  h, w = mask.shape
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
  return out


def _river(rng: np.random.Generator, size: int, mat: np.ndarray) -> None:
  """Paints a meandering river with a tree-lined bank into `mat`."""
  along, across = _rotated(rng, size, rng.uniform(0, np.pi))
  across = across - across.mean()
  centre = rng.uniform(-0.3, 0.3) * size + 0.06 * size * np.sin(
      2 * np.pi * along / rng.uniform(0.6, 1.5) / size + rng.uniform(0, 2 * np.pi))
  dist = np.abs(across - centre)
  width = rng.uniform(1.5, 3.5)
  mat[dist < width + 1.5] = _M["shrub"]
  mat[dist < width] = _M["water"]


def _paint(mat: np.ndarray, rgb_gain: np.ndarray, db_offset: np.ndarray) -> _Rendered:
  """Colour and backscatter of a material map with per-pixel modulation."""
  return _RGB[mat] * rgb_gain[..., None], _DB[mat] + db_offset


def _agri(scene: np.random.Generator, rng: np.random.Generator, size: int) -> _Rendered:
  """Patchwork of rectangular fields with hedges and tracks, sometimes a river."""
  angle = scene.uniform(-0.5, 0.5)
  field = scene.uniform(18, 40)
  crops = np.array([_M[n] for n in ("crop", "maize", "stubble", "ploughed", "meadow")])
  share = scene.dirichlet(np.full(len(crops), 2.0))
  hedges = scene.uniform(-0.5, 1.0)
  has_river = scene.random() < 0.35

  u, v = _rotated(rng, size, angle)
  mat = np.empty((size, size), dtype=np.int64)
  gain = np.empty((size, size))
  offset = np.empty((size, size))
  edge = np.empty((size, size))
  u_cuts = _cuts(rng, u.min(), u.max(), field)
  strip = np.searchsorted(u_cuts, u) - 1
  for s in np.unique(strip):
    m = strip == s
    v_cuts = _cuts(rng, v[m].min(), v[m].max(), field * rng.uniform(0.7, 1.8))
    cell = np.searchsorted(v_cuts, v[m]) - 1
    n = len(v_cuts)
    mat[m] = rng.choice(crops, size=n, p=share)[cell]
    gain[m] = rng.normal(1.0, 0.07, n)[cell]
    offset[m] = rng.normal(0.0, 1.0, n)[cell]
    edge[m] = np.minimum.reduce([u[m] - u_cuts[s], u_cuts[s + 1] - u[m],
                                 v[m] - v_cuts[cell], v_cuts[cell + 1] - v[m]])
  border = edge < 1.0
  mat[border] = np.where(_noise(rng, size, 40)[border] < hedges, _M["shrub"], _M["soil"])
  if has_river:
    _river(rng, size, mat)
  moisture = _noise(rng, size, 50)
  rows = 0.03 * np.sin(2 * np.pi * v / 4.0)
  return _paint(mat, gain * (1 - 0.06 * moisture + rows), offset + 1.2 * moisture)


def _barrenland(scene: np.random.Generator, rng: np.random.Generator, size: int) -> _Rendered:
  """Low-frequency fractal terrain of sand and rock, with dry channels."""
  palette = _BARREN_PALETTES[scene.integers(len(_BARREN_PALETTES))]
  sand, rock = (np.array(c, dtype=np.float64) for c in palette)
  tint = scene.normal(1.0, 0.04, 3)
  relief = scene.uniform(1.0, 2.5)

  height = _noise(rng, size, rng.uniform(60, 120), octaves=5)
  gy, gx = np.gradient(height)
  slope = (gx + 0.5 * gy) / (np.hypot(gx, gy).std() + 1e-9)
  rockiness = np.clip(0.5 + 0.3 * (0.6 * _noise(rng, size, 40) + 0.4 * height), 0, 1)
  channel = np.abs(_noise(rng, size, 90, octaves=3)) < 0.08
  rgb = (sand + (rock - sand) * rockiness[..., None]) * tint
  rgb *= (1 + 0.08 * relief * slope)[..., None]
  rgb[channel] *= 1.1
  roughness = 0.8 * _noise(rng, size, 6, octaves=2)
  db = -18.0 + 8.0 * rockiness + 1.5 * relief * np.clip(slope, -2, 2) + roughness
  db[channel] -= 3.0
  return rgb, db


def _grassland(scene: np.random.Generator, rng: np.random.Generator, size: int) -> _Rendered:
  """Mottled greens with darker shrub clumps, bare spots and sometimes a pond."""
  shrub_cover = scene.uniform(0.08, 0.3)
  bare_cover = scene.uniform(0.02, 0.1)
  clump = scene.uniform(12, 35)
  dry = np.array([160.0, 160.0, 90.0]) * scene.normal(1.0, 0.04, 3)
  has_pond = scene.random() < 0.3

  mat = np.full((size, size), _M["meadow"])
  shrubs = _noise(rng, size, clump)
  mat[shrubs > np.quantile(shrubs, 1 - shrub_cover * rng.uniform(0.6, 1.4))] = _M["shrub"]
  bare = _noise(rng, size, 30)
  mat[bare > np.quantile(bare, 1 - bare_cover)] = _M["soil"]
  if has_pond:
    pond = _noise(rng, size, 40, octaves=2)
    mat[pond > np.quantile(pond, 1 - rng.uniform(0.01, 0.04))] = _M["water"]
  biomass = _noise(rng, size, 20)
  dryness = np.clip(0.5 + 0.3 * _noise(rng, size, 60), 0, 1) * (mat == _M["meadow"])
  rgb, db = _paint(mat, 1 - 0.08 * biomass, 1.2 * biomass - 2.0 * dryness)
  rgb += (dry - _RGB[_M["meadow"]]) * dryness[..., None]
  return rgb, db


def _urban(scene: np.random.Generator, rng: np.random.Generator, size: int) -> _Rendered:
  """Grid of streets and blocks of bright roofs, with parks and gardens."""
  angle = scene.uniform(-0.4, 0.4)
  pitch = scene.uniform(12, 22)
  street = scene.uniform(1.6, 3.0)
  park_share = scene.uniform(0.05, 0.25)
  roofs = np.array([_M["roof_light"], _M["roof_red"], _M["roof_grey"]])
  roof_share = scene.dirichlet(np.full(len(roofs), 2.0))

  u, v = _rotated(rng, size, angle)
  bu, bv = np.floor(u / pitch).astype(np.int64), np.floor(v / pitch).astype(np.int64)
  fu, fv = u - bu * pitch, v - bv * pitch
  block = (bu - bu.min()) * (bv.max() - bv.min() + 1) + (bv - bv.min())
  n = block.max() + 1
  park = (rng.random(n) < park_share)[block]
  lot_u = rng.uniform(4, 9, n)[block]
  lot_v = rng.uniform(4, 9, n)[block]
  iu, iv = np.minimum((fu - street) // lot_u, 3), np.minimum((fv - street) // lot_v, 3)
  lot = (block * 16 + 4 * iu + iv).astype(np.int64)
  is_street = (fu < street) | (fv < street)
  gap = ((((fu - street) % lot_u < 0.8) & (iu > 0))
         | (((fv - street) % lot_v < 0.8) & (iv > 0)))
  gap &= (rng.random(n) < 0.5)[block]
  building = ~is_street & ~park & ~gap

  mat = np.full((size, size), _M["road"])
  mat[building] = rng.choice(roofs, size=16 * n, p=roof_share)[lot[building]]
  green = ~is_street & (park | gap)
  mat[green] = np.where(_noise(rng, size, 8)[green] > 0.3, _M["shrub"], _M["meadow"])
  gain = np.where(building, rng.normal(1.0, 0.08, 16 * n)[lot], 1.0)
  offset = np.where(building, rng.normal(0.0, 2.5, 16 * n)[lot], 0.0)
  rgb, db = _paint(mat, gain, offset)
  # The sensor looks east: west walls double-bounce, ground east of buildings lies in shadow.
  wall = building & ~_shift(building, 0, 1)
  db[wall] += 10.0 * np.cos(angle)**4
  db[~building & _shift(building, 0, 1)] -= 6.0
  # The sun is in the south: shadows fall north of buildings.
  rgb[~building & _shift(building, -1, 0)] *= 0.6
  return rgb, db


_RENDERERS: dict[str, _Renderer] = {
    "agri": _agri,
    "barrenland": _barrenland,
    "grassland": _grassland,
    "urban": _urban,
}


def _blur(a: np.ndarray) -> np.ndarray:
  """[1, 2, 1] / 4 smoothing along both image axes, a stand-in for the sensor's blur."""
  p = np.pad(a, [(1, 1), (1, 1)] + [(0, 0)] * (a.ndim - 2), mode="edge")
  a = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
  return 0.25 * a[:, :-2] + 0.5 * a[:, 1:-1] + 0.25 * a[:, 2:]


def _optical_u8(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
  """Optical image with sensor blur, gain jitter and noise, as uint8 RGB."""
  rgb = _blur(rgb) * rng.uniform(0.92, 1.08) + rng.normal(0.0, 2.0, rgb.shape)
  return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _sar_u8(rng: np.random.Generator, sigma_db: np.ndarray) -> np.ndarray:
  """Blurred, speckled backscatter, clipped to [-25, 0] dB and scaled to uint8 as in SEN1-2."""
  intensity = _blur(10.0**(sigma_db / 10.0)) * rng.gamma(_LOOKS, 1.0 / _LOOKS, sigma_db.shape)
  pixels, _ = SarScaling("linear", _DB_MIN, _DB_MAX).to_uint8(np.maximum(intensity, 1e-10))
  return pixels


def _prepare(out: pathlib.Path) -> None:
  """Makes `out` ready: new, empty, or a previous demo set whose images are removed."""
  if out.exists() and not out.is_dir():
    raise DataError(f"{out}: exists and is not a directory")
  if out.is_dir() and any(out.iterdir()):
    readme = out / "README.md"
    if not (readme.is_file() and readme.read_text(errors="replace").startswith(_README_TITLE)):
      raise DataError(
          f"{out}: directory is not empty and is not a sar2optical demo set; "
          "choose a new or empty output directory")
    for pattern in (f"*/s[12]/{_ROI}_{_SEASON}_s[12]_*.png", f"{_ROI}_*/s[12]_*/{_ROI}_*.png", "*/[AB]/*_p*.png"):
      for old in out.glob(pattern):
        old.unlink()
    for folder in sorted(out.glob("*/*"), reverse=True) + sorted(out.glob("*")):
      if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f"{out}: cannot create directory ({e.strerror})") from e


def pair_paths(layout: str, label: int, scene: int, patch: int) -> tuple[str, str]:
  """The SAR and optical paths, relative to the set's folder, of a pair of class CLASSES[label] in `layout`."""
  if layout == "original":
    folder = f"{_ROI}_{pairs_lib.SEASONS[label]}"
    stem = f"{folder}/s{{0}}_{scene}/{folder}_s{{0}}_{scene}_p{patch}.png"
    return stem.format(1), stem.format(2)
  if layout == "same-name":
    name = f"{CLASSES[label]}_{scene}_p{patch}.png"
    return f"{CLASSES[label]}/A/{name}", f"{CLASSES[label]}/B/{name}"
  stem = f"{CLASSES[label]}/s{{0}}/{_ROI}_{_SEASON}_s{{0}}_{scene}_p{patch}.png"
  return stem.format(1), stem.format(2)


def _readme(seed: int, pairs_per_class: int, size: int, layout: str) -> str:
  """Text of the README.md written next to the demo images."""
  total = pairs_per_class * len(CLASSES)
  sar, optical = pair_paths(layout, 0, 1, 1)
  return f"""{_README_TITLE}

Every image in this folder is SYNTHETIC. None of it is Sentinel-1 or Sentinel-2 data.
It was generated by `python -m sar2optical.commands.demo_data` (sar2optical.data.synthetic) with
seed {seed}: {pairs_per_class} pairs per class, {size}x{size} pixels, {total} pairs in all.

Scores measured on this data (L1, PSNR, SSIM, FID, ...) mean nothing about real
SAR-to-optical translation. Use it only to check that training, evaluation and
inference run end to end.

Layout ({layout}), for the classes {", ".join(CLASSES)}: e.g. `{sar}` (grey SAR backscatter,
[-25, 0] dB scaled to 0..255) and its twin `{optical}` (RGB).
"""


def generate(output_dir: str | pathlib.Path, *, pairs_per_class: int = 24, size: int = 256,
             seed: int = 0, layout: str = "kaggle") -> int:
  """Writes the synthetic demo set to `output_dir` and returns the number of pairs written.

  Raises:
    DataError: `output_dir` is a file, cannot be created, or is a non-empty directory that
      is not a previous demo set.
    ConfigError: `pairs_per_class`, `size` or `seed` is out of range, or `layout` not one of LAYOUTS.
  """
  if layout not in LAYOUTS:
    raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
  if pairs_per_class < 1:
    raise ConfigError(f"pairs_per_class must be >= 1, got {pairs_per_class}")
  if size < 32:
    raise ConfigError(f"size must be >= 32, got {size}")
  if seed < 0:
    raise ConfigError(f"seed must be >= 0, got {seed}")
  out = pathlib.Path(output_dir)
  _prepare(out)
  scenes = -(-pairs_per_class // _PATCHES_PER_SCENE)
  for c, name in enumerate(CLASSES):
    for k in range(pairs_per_class):
      scene, patch = c * scenes + k % scenes + 1, k // scenes + 1
      rng = np.random.default_rng([seed, c, scene, patch])
      rgb, sigma_db = _RENDERERS[name](np.random.default_rng([seed, c, scene]), rng, size)
      sar, optical = (out / path for path in pair_paths(layout, c, scene, patch))
      for path, pixels in ((sar, _sar_u8(rng, sigma_db)), (optical, _optical_u8(rng, rgb))):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, compress_level=1)
  (out / "README.md").write_text(_readme(seed, pairs_per_class, size, layout))
  return pairs_per_class * len(CLASSES)

