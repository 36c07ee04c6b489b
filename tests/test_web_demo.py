"""The web demo in a real browser (headless Chromium from the Debian packages, driven by Selenium): an upload
gives predict.py's bytes, bad input is a message in the page and the server goes on; the Space starts."""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO, SEN12_ROOT, requires_sen12
from PIL import Image
from rasterio.transform import from_origin

import chromium
import sar2optical
from sar2optical.errors import Sar2OpticalError
from sar2optical.translator import SarOptions

WAIT_S = 120
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def web_demo():
  """The module sar2optical.web_demo; skips without Gradio (the [demo] extra, which the test extra includes)."""
  pytest.importorskip("gradio", reason="gradio (the [demo] extra) is not installed")
  from sar2optical import web_demo as module  # pylint: disable=g-import-not-at-top
  return module


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> pathlib.Path:
  """Two real SEN1-2 SAR patches (256², 8-bit) in a folder of their own."""
  folder = tmp_path_factory.mktemp("patches")
  for terrain in ("agri", "urban"):
    shutil.copy(sorted((SEN12_ROOT / terrain / "s1").glob("*.png"))[0], folder)
  return folder


@pytest.fixture(scope="module")
def demo_server(web_demo, tiny_workdir, patches):
  """`python -m sar2optical.demo` on the tiny workdir at a free port: (process, url), started, not waited for."""
  port = chromium.free_port()
  process = chromium.start_demo(tiny_workdir, port, f"--examples={patches}")
  yield process, f"http://127.0.0.1:{port}/"
  chromium.stop(process)


@pytest.fixture(scope="module")
def predicted(tiny_workdir, patches, tmp_path_factory) -> pathlib.Path:
  """predict.py's PNGs for the patches, from the script itself (while the demo starts)."""
  output = tmp_path_factory.mktemp("predicted")
  subprocess.run([sys.executable, str(REPO / "predict.py"), f"--workdir={tiny_workdir}", f"--input={patches}",
                  f"--output={output}"], check=True, cwd=REPO, env=ENV,
                 capture_output=True, timeout=600)
  return output


@pytest.fixture
def browser(tmp_path):
  if reason := chromium.unavailable():
    pytest.skip(reason)
  driver = chromium.open_browser(tmp_path / "downloads")
  yield driver
  driver.quit()


@requires_sen12
def test_the_page_translates_as_predict_py_and_survives_bad_input(demo_server, predicted, patches, browser,
                                                                  tmp_path):
  process, url = demo_server
  chromium.wait_until_serving(url, process, WAIT_S)
  browser.get(url)
  first, second = sorted(patches.iterdir())
  chromium.upload(browser, first)
  expected = predicted / first.name
  assert np.array_equal(chromium.shown_translation(browser, first.name, WAIT_S), np.asarray(Image.open(expected)))
  browser.find_element("id", "png").click()
  downloaded = tmp_path / "downloads" / f"{first.stem}_optical.png"
  chromium.wait(lambda: downloaded.is_file() and not list(downloaded.parent.glob("*.crdownload")),
                "the PNG download", WAIT_S)
  assert downloaded.read_bytes() == expected.read_bytes()  # predict.py's file, byte for byte
  browser.save_screenshot(str(tmp_path / "web_demo.png"))
  print(f"screenshot: {tmp_path / 'web_demo.png'}")

  not_an_image = tmp_path / "notes.png"
  not_an_image.write_text("a text file named like an image")
  chromium.upload(browser, not_an_image)
  chromium.wait(lambda: "cannot decode image notes.png" in chromium.page_text(browser), "the error in the page",
                WAIT_S)
  chromium.upload(browser, second)
  shown = chromium.shown_translation(browser, second.name, WAIT_S)
  assert np.array_equal(shown, np.asarray(Image.open(predicted / second.name)))
  chromium.pick_example(browser, first.name)  # --examples=the patches' folder
  assert np.array_equal(chromium.shown_translation(browser, first.name, WAIT_S), np.asarray(Image.open(expected)))
  assert chromium.requested_hosts(browser) == {url.split("/")[2]}  # nothing fetched from elsewhere


def test_without_gradio_the_command_says_how_to_install_it(tmp_path):
  code = ("import runpy, sys; sys.modules['gradio'] = None; sys.argv = ['demo', '--workdir=nowhere']; "
          "runpy.run_module('sar2optical.demo', run_name='__main__')")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2 and "pip install 'sar2optical[demo]'" in result.stderr.strip().splitlines()[-1]


def test_a_workdir_without_checkpoints_is_one_line_and_exit_status_2(web_demo, tmp_path):
  result = subprocess.run([sys.executable, "-m", "sar2optical.demo", f"--workdir={tmp_path}"], cwd=REPO,
                          env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1].startswith(f"error: no checkpoints in {tmp_path}")


def test_an_upload_keeps_georeferencing_and_large_previews_are_downscaled(web_demo, tiny_workdir, tmp_path):
  translator = sar2optical.load(tiny_workdir)
  height, width = 300, web_demo.PREVIEW_SIDE + 77  # previews take every 2nd pixel
  db = np.linspace(-24, -1, height * width, dtype=np.float32).reshape(height, width)
  db[:20, :30] = np.nan
  source = tmp_path / "scene.tif"
  transform = from_origin(600000.0, 5300000.0, 10.0, 10.0)
  with rasterio.open(source, "w", driver="GTiff", count=1, height=height, width=width, dtype="float32",
                     crs="EPSG:32633", transform=transform, nodata=np.nan) as dataset:
    dataset.write(db[None])
  result = web_demo.translate_upload(translator, source, tmp_path / "out", SarOptions("db"))
  with rasterio.open(result.geotiff) as dataset:
    assert dataset.crs == rasterio.crs.CRS.from_string("EPSG:32633") and dataset.transform == transform
    rgb = np.moveaxis(dataset.read(), 0, -1)
  assert np.array_equal(rgb, translator.translate(db, sar_units="db"))
  assert np.array_equal(np.asarray(Image.open(result.png)), rgb)
  assert np.array_equal(result.rgb_preview, rgb[::2, ::2]) and result.sar_preview.shape == (150, (width + 1) // 2)
  assert "downscaled 2×" in result.note("scene.tif", 1.0)
  with pytest.raises(Sar2OpticalError, match="sar_units=linear or sar_units=db"):
    web_demo.translate_upload(translator, source, tmp_path / "out", SarOptions("uint8"))
  with pytest.raises(Sar2OpticalError, match="no band '2'"):
    web_demo.translate_upload(translator, source, tmp_path / "out", SarOptions("db", band="2"))


def test_the_written_space_starts_and_answers(web_demo, tiny_workdir, tmp_path):
  app = web_demo.write_space(tiny_workdir, tmp_path / "space")
  readme = (app.parent / "README.md").read_text()
  assert readme.startswith("---\n") and "sdk: gradio\n" in readme and "app_file: app.py\n" in readme
  assert any(line.startswith("jax") for line in (app.parent / "requirements.txt").read_text().splitlines())
  port = chromium.free_port()
  process = chromium.start([sys.executable, "app.py"], app.parent, GRADIO_SERVER_PORT=str(port))
  try:
    chromium.wait_until_serving(f"http://127.0.0.1:{port}/", process, WAIT_S)
  finally:
    chromium.stop(process)
  with pytest.raises(Sar2OpticalError, match="not an empty folder"):
    web_demo.write_space(tiny_workdir, app.parent)
