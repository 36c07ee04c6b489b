"""Tiled translation of images of any size: tiles, seams, SAR units, GeoTIFF in and out, bad files."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO
from PIL import Image
from rasterio.control import GroundControlPoint
from rasterio.transform import from_origin

from sar2optical.core.errors import ConfigError
from sar2optical.inference import tile_engine
from sar2optical.inference.restore import load_generator
from sar2optical.inference.tiling import Blender, TileGrid, reflect_indices
from sar2optical.model.pixels import SarScaling

TILE = 32  # the tiny model's image size
CRS = "EPSG:32633"
TRANSFORM = from_origin(600000.0, 5300000.0, 10.0, 10.0)


@pytest.fixture(scope="module")
def workdir(tiny_workdir) -> pathlib.Path:
  return tiny_workdir


@pytest.fixture(scope="module")
def generator(workdir):
  return load_generator(workdir)


@pytest.fixture(scope="module")
def scene_u8() -> np.ndarray:
  """A 70 × 100 SAR-like uint8 image with structure at several scales."""
  rng = np.random.default_rng(0)
  y, x = np.mgrid[:70, :100]
  smooth = 120 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + 30 * (x > 55)
  return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def translate(generator, tmp_path: pathlib.Path, name: str, **options) -> tile_engine.Summary:
  """Translates tmp_path/in/<name> into tmp_path/out/."""
  inputs = tile_engine.find_inputs(str(tmp_path / "in" / name))
  return tile_engine.translate_files(generator, inputs, tmp_path / "out",
                                    tile_engine.Options(**{"batch_size": 16, **options}))


def write_png(path: pathlib.Path, pixels: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path)


def write_geotiff(path: pathlib.Path, bands: np.ndarray, **profile) -> None:
  """(count, H, W) bands with the test CRS and transform unless `profile` says otherwise."""
  path.parent.mkdir(parents=True, exist_ok=True)
  profile = {"crs": CRS, "transform": TRANSFORM, **profile}
  with rasterio.open(path, "w", driver="GTiff", count=len(bands), height=bands.shape[1], width=bands.shape[2],
                     dtype=bands.dtype, **profile) as dataset:
    dataset.write(bands)


def read_png(path: pathlib.Path) -> np.ndarray:
  return np.asarray(Image.open(path))


def db_of(pixels: np.ndarray) -> np.ndarray:
  """The dB values that SEN1-2 stores as `pixels` (the inverse of its 8-bit scaling)."""
  return -25.0 + 25.0 * pixels.astype(np.float64) / 255.0


# Tiling alone.


@pytest.mark.parametrize("start, stop, size", [(-5, 12, 8), (0, 40, 3), (-9, 30, 1), (6, 20, 7)])
def test_reflect_indices_mirror_like_numpy(start, stop, size):
  values = np.arange(size)
  pad_before, pad_after = max(0, -start), max(0, stop - size)
  expected = np.pad(values, (pad_before, pad_after), mode="reflect")[start + pad_before:stop + pad_before]
  np.testing.assert_array_equal(reflect_indices(start, stop, size), expected)


def blend(grid: TileGrid, image: np.ndarray, skipped: frozenset[int] = frozenset()) -> np.ndarray:
  """Identity "translation" of `image` through tiles and a Blender; tiles numbered in `skipped` are left out."""
  blender = Blender(grid, channels=image.shape[-1])
  result = np.full_like(image, np.nan)
  next_row, index = 0, 0
  for row in range(len(grid.row_origins)):
    first, stop = grid.strip_rows(row)
    for tile in grid.tile_row(row, image[first:stop]):
      assert tile.shape == (TILE, TILE, image.shape[-1])
      released = blender.add(None if index in skipped else tile)
      index += 1
      if released is not None:
        start, rows = released
        assert start == next_row
        result[start:start + len(rows)] = rows
        next_row = start + len(rows)
  assert next_row == grid.height and blender.done
  return result


@pytest.mark.parametrize("height, width", [(70, 100), (5, 7), (64, 97)])
def test_tiles_with_data_are_the_tiles_holding_a_valid_pixel(height, width):
  grid = TileGrid(height, width, TILE, 8)
  valid = np.random.default_rng(2).random((height, width)) > 0.9995  # a few scattered valid pixels
  for row in range(len(grid.row_origins)):
    first, stop = grid.strip_rows(row)
    expected = [bool(tile.any()) for tile in grid.tile_row(row, valid[first:stop])]
    assert grid.tiles_with_data(row, valid[first:stop]) == expected


@pytest.mark.parametrize("height, width, overlap", [(70, 100, 8), (32, 32, 8), (5, 7, 8), (64, 97, 0), (33, 40, 16)])
def test_tiles_blend_back_to_the_image(height, width, overlap):
  """Cutting into tiles and blending returns the image, released band by band."""
  image = np.random.default_rng(1).random((height, width, 3)).astype(np.float32)
  np.testing.assert_allclose(blend(TileGrid(height, width, TILE, overlap), image), image, rtol=1e-6)


def test_untranslated_tiles_add_nothing():
  image = np.random.default_rng(1).random((70, 100, 1)).astype(np.float32) + 1
  grid = TileGrid(70, 100, TILE, 8)  # tiles at 0, 24, 48 (rows) and 0, 24, 48, 72 (columns)
  result = blend(grid, image, skipped=frozenset({2}))  # row 0, columns 48..79
  alone = np.zeros(image.shape, bool)
  alone[:24, 56:72] = True  # covered by no other tile
  assert not result[alone].any()
  np.testing.assert_allclose(result[~alone], image[~alone], rtol=1e-6)


def test_tile_sized_image_is_one_tile():
  assert len(TileGrid(256, 256, 256, 64)) == 1
  assert TileGrid.with_overlap_fraction(10980, 10980, 256, 0.25).row_origins[:3] == (0, 192, 384)


# SAR units.


def test_sar_scaling_follows_sen12():
  db = np.array([-30.0, -25.0, -12.5, 0.0, 3.0, np.nan])
  pixels, valid = SarScaling("db").to_uint8(db)
  np.testing.assert_array_equal(pixels, [0, 0, 128, 0, 255, 0])
  np.testing.assert_array_equal(valid, [True, True, True, False, True, False])  # exactly 0: zero fill
  pixels, valid = SarScaling("linear").to_uint8(np.array([10 ** -1.25, 1.0, 0.0, -1.0]))
  np.testing.assert_array_equal(pixels, [128, 255, 0, 0])
  np.testing.assert_array_equal(valid, [True, True, False, False])
  with pytest.raises(ConfigError, match="db_min"):
    SarScaling("db", db_min=0.0, db_max=-25.0)


# Translation through the files.


def test_tile_sized_image_translates_as_whole(generator, tmp_path, scene_u8):
  sar = scene_u8[:TILE, :TILE]
  write_png(tmp_path / "in" / "patch.png", sar)
  assert translate(generator, tmp_path, "patch.png").translated == 1
  batch = np.repeat(sar[None, ..., None], 16, axis=0)  # the batch shape translate_files compiles
  whole = generator.pixels.to_uint8(generator(batch))[0]
  np.testing.assert_array_equal(read_png(tmp_path / "out" / "patch.png"), whole)


def seam_ratio(image: np.ndarray, seams: list[int], period: int) -> float:
  """Mean jump into the seam columns over that into the other columns of the same phase modulo `period`.

  A U-Net of L levels draws a faint texture of period 2^L of its own; tile borders lie on that grid.
  """
  jumps = np.abs(np.diff(image.astype(np.float64), axis=1)).mean(axis=(0, 2))  # jumps[x - 1]: into column x
  columns = np.arange(1, image.shape[1])
  at_seams = np.isin(columns, seams)
  same_phase = (columns % period == 0) & ~at_seams
  return jumps[at_seams].mean() / jumps[same_phase].mean()


def test_no_seams_across_tile_borders(generator, tmp_path, scene_u8):
  """With overlap, the output is as smooth across tile borders as elsewhere; without, it is not."""
  image = scene_u8.T.copy()  # 100 rows × 70 columns: three tile columns, many rows to average over
  write_png(tmp_path / "in" / "scene.png", image)
  ratios = {}
  for overlap in (0.0, 0.25):
    translate(generator, tmp_path, "scene.png", overlap=overlap, overwrite=True)
    grid = TileGrid.with_overlap_fraction(*image.shape, TILE, overlap)
    seams = sorted({x for origin in grid.col_origins[1:] for x in (origin, origin - grid.stride + TILE)} - {0})
    output = read_png(tmp_path / "out" / "scene.png")
    assert output.shape == (100, 70, 3)
    period = 2**generator.config.model.levels
    ratios[overlap] = seam_ratio(output, [x for x in seams if x < image.shape[1]], period)
  assert ratios[0.25] < 1.25, ratios
  assert ratios[0.0] > 2 * ratios[0.25], ratios  # the measure sees the seams of hard tiles


def test_odd_sizes_keep_height_and_width(generator, tmp_path):
  write_png(tmp_path / "in" / "wide.png", np.random.default_rng(2).integers(0, 256, (700, 1000), np.uint8))
  assert translate(generator, tmp_path, "wide.png", batch_size=64).translated == 1
  assert Image.open(tmp_path / "out" / "wide.png").size == (1000, 700)


def test_geotiff_keeps_georeferencing_and_nodata(generator, tmp_path, scene_u8):
  db = db_of(scene_u8).astype(np.float32)
  db[:45, 45:] = -9999.0  # holds whole tiles, which are not translated
  write_geotiff(tmp_path / "in" / "scene.tif", db[None], nodata=-9999.0)
  assert translate(generator, tmp_path, "scene.tif", sar=SarScaling("db")).translated == 1
  with rasterio.open(tmp_path / "out" / "scene.tif") as output:
    assert (output.height, output.width, output.count, output.dtypes[0]) == (70, 100, 3, "uint8")
    assert output.crs == rasterio.crs.CRS.from_string(CRS) and output.transform == TRANSFORM
    assert output.profile["tiled"] and output.compression == rasterio.enums.Compression.deflate
    rgb, mask = output.read(), output.dataset_mask()
  nodata = np.zeros(mask.shape, bool)
  nodata[:45, 45:] = True
  np.testing.assert_array_equal(mask == 0, nodata)
  assert not rgb[:, nodata].any() and rgb[:, ~nodata].std() > 0


def test_zero_filled_borders_are_masked(generator, tmp_path, scene_u8):
  linear = 10 ** (db_of(scene_u8) / 10).astype(np.float32)
  linear[:, :12] = 0.0
  write_geotiff(tmp_path / "in" / "sigma0.tif", linear[None].astype(np.float32))
  translate(generator, tmp_path, "sigma0.tif", sar=SarScaling("linear"))
  with rasterio.open(tmp_path / "out" / "sigma0.tif") as output:
    mask, rgb = output.dataset_mask(), output.read()
  assert not mask[:, :12].any() and mask[:, 12:].all() and not rgb[:, :, :12].any()


def test_db_linear_and_uint8_give_the_same_result(generator, tmp_path, scene_u8):
  db = db_of(scene_u8)
  write_geotiff(tmp_path / "in" / "db.tif", db[None].astype(np.float32))
  write_geotiff(tmp_path / "in" / "linear.tif", (10 ** (db / 10))[None].astype(np.float32))
  write_geotiff(tmp_path / "in" / "uint8.tif", scene_u8[None])
  for name, units in (("db", "db"), ("linear", "linear"), ("uint8", "uint8")):
    translate(generator, tmp_path, f"{name}.tif", sar=SarScaling(units))
  results = {name: rasterio.open(tmp_path / "out" / f"{name}.tif").read() for name in ("db", "linear", "uint8")}
  np.testing.assert_array_equal(results["db"], results["uint8"])
  np.testing.assert_array_equal(results["linear"], results["uint8"])


def test_one_and_three_band_inputs(generator, tmp_path, scene_u8):
  other = 255 - scene_u8
  write_png(tmp_path / "in" / "grey.png", scene_u8)
  write_png(tmp_path / "in" / "rgb.png", np.repeat(scene_u8[..., None], 3, axis=-1))
  write_geotiff(tmp_path / "in" / "other.tif", other[None])
  write_geotiff(tmp_path / "in" / "stack.tif", np.stack([scene_u8, other, scene_u8]))
  with rasterio.open(tmp_path / "in" / "stack.tif", "r+") as stack:
    for band, name in enumerate(("VV", "VH", "VV_again"), 1):
      stack.set_band_description(band, name)
  translate(generator, tmp_path, "*.png")
  translate(generator, tmp_path, "other.tif")
  assert translate(generator, tmp_path, "stack.tif", band="2").translated == 1
  np.testing.assert_array_equal(read_png(tmp_path / "out" / "rgb.png"), read_png(tmp_path / "out" / "grey.png"))
  band_2 = rasterio.open(tmp_path / "out" / "stack.tif").read()
  np.testing.assert_array_equal(band_2, rasterio.open(tmp_path / "out" / "other.tif").read())
  assert translate(generator, tmp_path, "stack.tif", band="vh", overwrite=True).translated == 1
  np.testing.assert_array_equal(rasterio.open(tmp_path / "out" / "stack.tif").read(), band_2)


def test_gcp_georeferencing_is_kept(generator, tmp_path, scene_u8):
  gcps = [GroundControlPoint(row, col, 16.0 + col * 1e-4, 48.0 - row * 1e-4, 0.0)
          for row, col in ((0, 0), (0, 99), (69, 0), (69, 99))]
  write_geotiff(tmp_path / "in" / "grd.tif", scene_u8[None], crs=None, transform=None)
  with rasterio.open(tmp_path / "in" / "grd.tif", "r+") as grd:
    grd.gcps = (gcps, rasterio.crs.CRS.from_epsg(4326))
  translate(generator, tmp_path, "grd.tif")
  with rasterio.open(tmp_path / "out" / "grd.tif") as output:
    kept, crs = output.gcps
  assert crs == rasterio.crs.CRS.from_epsg(4326)
  assert [(p.row, p.col, p.x, p.y) for p in kept] == [(p.row, p.col, p.x, p.y) for p in gcps]


def test_bad_files_are_reported_and_the_rest_go_on(generator, tmp_path, scene_u8, caplog):
  write_png(tmp_path / "in" / "good.png", scene_u8)
  (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
  write_geotiff(tmp_path / "in" / "sub" / "truncated.tif", db_of(scene_u8)[None].astype(np.float32))
  truncated = tmp_path / "in" / "sub" / "truncated.tif"
  truncated.write_bytes(truncated.read_bytes()[:2000])
  write_geotiff(tmp_path / "in" / "float.tif", db_of(scene_u8)[None].astype(np.float32))
  summary = translate(generator, tmp_path, "")
  assert (summary.translated, summary.failed) == (1, 3)
  for name in ("broken.png", "truncated.tif", "float.tif"):
    assert name in caplog.text
  assert "sar_units=linear" in caplog.text
  assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["good.png"]  # nothing half-written
  again = translate(generator, tmp_path, "good.png")
  assert (again.translated, again.skipped) == (0, 1)


def test_a_scene_unreadable_past_its_middle_leaves_no_output(generator, tmp_path, scene_u8):
  """The read fails rows into the scene, while earlier rows are being blended and written in other threads."""
  scene = np.tile(db_of(scene_u8), (4, 3)).astype(np.float32)  # 280 × 300, stored in 16-row strips
  write_geotiff(tmp_path / "in" / "a_cut.tif", scene[None], blockysize=16)
  cut = tmp_path / "in" / "a_cut.tif"
  cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
  write_geotiff(tmp_path / "in" / "b_whole.tif", scene[None])
  summary = translate(generator, tmp_path, "", sar=SarScaling("db"), batch_size=3)
  assert (summary.translated, summary.failed) == (1, 1) and "cannot read rows" in summary.errors[0]
  assert "a_cut.tif" in summary.errors[0]
  assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["b_whole.tif"]


def test_band_that_does_not_exist_is_named(generator, tmp_path, scene_u8):
  write_geotiff(tmp_path / "in" / "one.tif", scene_u8[None])
  assert translate(generator, tmp_path, "one.tif", band="VH").failed == 1


def test_script_with_checkpoint_and_geotiff(workdir, tmp_path, scene_u8):
  write_geotiff(tmp_path / "in" / "nested" / "scene.tif", db_of(scene_u8)[None].astype(np.float32),
                nodata=np.nan)
  write_png(tmp_path / "in" / "patch.png", scene_u8)
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  command = [sys.executable, str(REPO / "predict.py"), f"--checkpoint={workdir / 'checkpoints' / '2'}",
             f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}", "--sar_units=db", "--batch_size=4"]
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]  # patch.png is uint8, not dB
  assert "translated 1, skipped 0, failed 1" in result.stdout and "patch.png" in result.stderr
  assert "tile/s" in result.stderr
  with rasterio.open(tmp_path / "out" / "nested" / "scene.tif") as output:
    assert output.crs == rasterio.crs.CRS.from_string(CRS) and (output.width, output.height) == (100, 70)
  bad = subprocess.run(command[:2] + [f"--checkpoint={workdir}", "--input=x", "--output=y"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2 and "--checkpoint" in bad.stderr and "Traceback" not in bad.stderr
