"""The Python API: `sar2optical.load(path).translate(array)` gives predict.py's bytes; loads from every path."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO, SEN12_ROOT
from PIL import Image
from rasterio.transform import from_origin

import sar2optical
from sar2optical.core.errors import CheckpointError, ConfigError, DataError
from sar2optical.interop import stablehlo

CRS = "EPSG:32633"
TRANSFORM = from_origin(600000.0, 5300000.0, 10.0, 10.0)


def db_of(pixels: np.ndarray) -> np.ndarray:
  """dB values whose SEN1-2 8-bit scaling is `pixels`, NaN (nodata) in one corner."""
  values = (-25.0 + 25.0 * pixels.astype(np.float64) / 255.0).astype(np.float32)
  values[:9, :13] = np.nan
  return values


@pytest.fixture(scope="module")
def sar_png() -> np.ndarray:
  """A real SEN1-2 SAR patch (256²) where the sample is present, else a synthetic one."""
  files = sorted((SEN12_ROOT / "urban" / "s1").glob("*.png")) if SEN12_ROOT.is_dir() else []
  if files:
    return np.asarray(Image.open(files[0]))
  y, x = np.mgrid[:96, :80]
  return np.clip(120 + 60 * np.sin(x / 7.0) * np.cos(y / 11.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def predicted(tiny_workdir, sar_png, tmp_path_factory) -> pathlib.Path:
  """predict.py's outputs for a SAR PNG and a float32 dB GeoTIFF of odd size, from one run of the script."""
  root = tmp_path_factory.mktemp("predict")
  (root / "in").mkdir()
  Image.fromarray(sar_png).save(root / "in" / "patch.png")
  scene = db_of(sar_png[:70, :75])
  with rasterio.open(root / "in" / "scene.tif", "w", driver="GTiff", count=1, height=70, width=75,
                     dtype="float32", crs=CRS, transform=TRANSFORM, nodata=np.nan) as dataset:
    dataset.write(scene[None])
  for units, name in (("uint8", "patch.png"), ("db", "scene.tif")):
    subprocess.run([sys.executable, str(REPO / "predict.py"), f"--workdir={tiny_workdir}",
                    f"--input={root / 'in' / name}", f"--output={root / 'out'}", f"--sar_units={units}"],
                   check=True, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True,
                   timeout=600)
  return root


@pytest.fixture(scope="module")
def translator(tiny_workdir):
  return sar2optical.load(tiny_workdir)


def test_translate_equals_predict_byte_for_byte(translator, predicted, sar_png):
  expected = np.asarray(Image.open(predicted / "out" / "patch.png"))
  assert np.array_equal(translator.translate(sar_png), expected)
  rgb_sar = np.repeat(sar_png[..., None], 3, axis=-1)  # a grey image loaded as RGB is made grey again
  assert np.array_equal(translator.translate(rgb_sar), expected)


def test_translate_db_equals_predict_on_the_geotiff(translator, predicted):
  with rasterio.open(predicted / "in" / "scene.tif") as dataset:
    scene = dataset.read(1)
  with rasterio.open(predicted / "out" / "scene.tif") as dataset:
    expected = np.moveaxis(dataset.read(), 0, -1)
  rgb = translator.translate(scene, sar_units="db")
  assert rgb.dtype == np.uint8 and rgb.shape == (70, 75, 3)
  assert np.array_equal(rgb, expected) and not rgb[:9, :13].any()
  assert np.array_equal(translator.translate(np.stack([scene * 0, scene], -1), sar_units="db", band="2"), expected)


def test_translate_file_keeps_georeferencing(translator, predicted, tmp_path):
  target = translator.translate_file(predicted / "in" / "scene.tif", tmp_path / "a" / "scene.tif",
                                     sar_units="db")
  with rasterio.open(target) as output, rasterio.open(predicted / "out" / "scene.tif") as expected:
    assert output.crs == rasterio.crs.CRS.from_string(CRS) and output.transform == TRANSFORM
    assert np.array_equal(output.read(), expected.read())
    assert np.array_equal(output.read_masks(1), expected.read_masks(1))


def test_load_takes_a_step_directory_and_an_exported_artifact(tiny_workdir, translator, sar_png, tmp_path):
  step_dir = sar2optical.load(tiny_workdir / "checkpoints" / "1")
  assert step_dir.step == 1 and translator.step == 2
  artifact = stablehlo.export_workdir(tiny_workdir, tmp_path / "generator.jax", platforms=("cpu",))
  exported = sar2optical.load(artifact, overlap=0.0)
  untiled = sar2optical.load(tiny_workdir, overlap=0.0)
  assert exported.step == 2
  tiles = sar_png[:64, :96]  # whole tiles without overlap: the artifact's pixels are the checkpoint's
  difference = np.abs(exported.translate(tiles).astype(int) - untiled.translate(tiles).astype(int))
  assert difference.max() <= 1 and (difference == 0).mean() > 0.99  # float vs uint8 graph: rounding only


def test_bad_paths_and_arrays_name_the_problem(tiny_workdir, translator, tmp_path):
  with pytest.raises(CheckpointError, match="nowhere"):
    sar2optical.load(tmp_path / "nowhere")
  with pytest.raises(CheckpointError, match="no checkpoints"):
    sar2optical.load(tmp_path)
  artifact = stablehlo.export_workdir(tiny_workdir, tmp_path / "generator.jax", platforms=("cpu",))
  sidecar = pathlib.Path(f"{artifact}.json")
  sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "format": "something older"}))
  with pytest.raises(CheckpointError, match="generator.jax.*something older"):
    sar2optical.load(artifact)
  with pytest.raises(DataError, match="sar_units=linear"):
    translator.translate(np.ones((40, 40), np.float32))
  with pytest.raises(DataError, match="2 bands.*band must be 1..2"):
    translator.translate(np.ones((40, 40, 2), np.float32), sar_units="db", band="3")
  with pytest.raises(DataError, match="shape"):
    translator.translate(np.ones(40, np.uint8))
  with pytest.raises(ConfigError, match="out.bmp"):
    translator.translate_file(tmp_path / "in.png", tmp_path / "out.bmp")
  with pytest.raises(DataError, match="missing.png"):
    translator.translate_file(tmp_path / "missing.png", tmp_path / "out" / "x.png")
  assert not (tmp_path / "out" / "x.png").exists()


def test_importing_the_package_stays_light():
  code = "import sys, sar2optical; assert 'jax' not in sys.modules; assert callable(sar2optical.load)"
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_a_translator_says_what_it_is_and_the_package_lists_its_api(translator, tiny_workdir, tmp_path):
  assert repr(translator) == ("<Translator: step 2, 32² tiles (a checkpoint); SAR in sar_units uint8 (default), "
                              "linear or db, uint8 RGB out; overlap 0.25, batch_size 8>")
  artifact = stablehlo.export_workdir(tiny_workdir, tmp_path / "generator.jax", platforms=("cpu",))
  assert repr(sar2optical.load(artifact, batch_size=2)).startswith("<Translator: step 2, 32² tiles (an exported "
                                                                  "artifact);")
  assert dir(sar2optical) == ["Translator", "__version__", "load"]


def test_an_array_shows_a_progress_bar_only_when_asked(translator, sar_png, capfd):
  translator.translate(sar_png)
  assert capfd.readouterr().err == ""
  translator.translate(sar_png, progress=True)
  assert "1 array: 100%" in capfd.readouterr().err
