"""The web demo in a real browser (headless Chromium from the Debian packages, driven by Selenium): an upload
gives predict.py's bytes, bad input is a message in the page and the server goes on; the Space starts."""

import base64
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import rasterio
from conftest import REPO, SEN12_ROOT, requires_sen12
from PIL import Image
from rasterio.transform import from_origin

import sar2optical

pytest.importorskip("gradio", reason="gradio (the [demo] extra) is not installed")
from sar2optical import web_demo  # noqa: E402  (needs gradio)
from sar2optical.errors import Sar2OpticalError  # noqa: E402
from sar2optical.translator import SarOptions  # noqa: E402

CHROMIUM, CHROMEDRIVER = pathlib.Path("/usr/bin/chromium"), pathlib.Path("/usr/bin/chromedriver")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
WAIT_S = 120


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen) -> None:
  """Polls `url` until it answers 200; fails with the process's output if it ends first."""
  deadline = time.monotonic() + WAIT_S
  while time.monotonic() < deadline:
    if process.poll() is not None:
      pytest.fail(f"the server ended with status {process.returncode}:\n{process.stdout.read()[-3000:]}")
    try:
      with urllib.request.urlopen(url, timeout=2) as response:
        if response.status == 200:
          return
    except OSError:
      time.sleep(0.3)
  pytest.fail(f"{url} did not answer within {WAIT_S} s")


def start(args: list[str], cwd: pathlib.Path, env: dict[str, str] = ENV) -> subprocess.Popen:
  return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process: subprocess.Popen) -> None:
  process.terminate()
  try:
    process.wait(timeout=20)
  except subprocess.TimeoutExpired:
    process.kill()


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> pathlib.Path:
  """Two real SEN1-2 SAR patches (256², 8-bit) in a folder of their own."""
  folder = tmp_path_factory.mktemp("patches")
  for path in (sorted((SEN12_ROOT / "agri" / "s1").glob("*.png"))[0], sorted((SEN12_ROOT / "urban" / "s1").glob("*.png"))[0]):
    shutil.copy(path, folder)
  return folder


@pytest.fixture(scope="module")
def demo_server(tiny_workdir, patches):
  """`python -m sar2optical.demo` on the tiny workdir at a free port: (process, url), not yet waited for."""
  port = free_port()
  process = start([sys.executable, "-m", "sar2optical.demo", f"--workdir={tiny_workdir}", f"--port={port}",
                   f"--examples={patches}"], REPO)
  yield process, f"http://127.0.0.1:{port}/"
  stop(process)


@pytest.fixture(scope="module")
def predicted(tiny_workdir, patches, tmp_path_factory) -> pathlib.Path:
  """predict.py's PNGs for the patches, from the script itself."""
  output = tmp_path_factory.mktemp("predicted")
  subprocess.run([sys.executable, str(REPO / "predict.py"), f"--workdir={tiny_workdir}", f"--input={patches}",
                  f"--output={output}"], check=True, cwd=REPO, env=ENV, capture_output=True, timeout=600)
  return output


@pytest.fixture
def browser(tmp_path):
  """Headless Chromium from the Debian packages (nothing downloaded), downloading into tmp_path/downloads."""
  webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (a test dependency) is not installed")
  if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(f"no {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver")
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = str(CHROMIUM)
  for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
    options.add_argument(argument)
  options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                            "download.prompt_for_download": False})
  options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
  driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
  yield driver
  driver.quit()


def upload(driver, path: pathlib.Path) -> None:
  """Clears the upload field if it holds a file, then uploads `path` (which starts the translation)."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  for clear in driver.find_elements(By.CSS_SELECTOR, "#upload button[aria-label=Clear]"):
    clear.click()
  wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), "the upload field")
  driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))


def wait(condition, what: str):
  deadline = time.monotonic() + WAIT_S
  while time.monotonic() < deadline:
    if result := condition():
      return result
    time.sleep(0.1)
  pytest.fail(f"waited {WAIT_S} s for {what}")


def displayed_translation(driver, name: str) -> np.ndarray:
  """The pixels of the translation the page shows once its note names `name`, fetched by the page itself."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  wait(lambda: name in driver.find_element(By.ID, "note").text, f"the translation of {name}")
  source = driver.find_element(By.CSS_SELECTOR, "#translation img").get_attribute("src")
  encoded = driver.execute_async_script("""
      const [source, done] = arguments;
      fetch(source).then(r => r.arrayBuffer()).then(buffer => {
        let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
        done(btoa(text)); });""", source)
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


@requires_sen12
def test_the_page_translates_as_predict_py_and_survives_bad_input(demo_server, predicted, patches, browser,
                                                                  tmp_path):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  process, url = demo_server
  wait_until_serving(url, process)
  browser.get(url)
  first, second = sorted(patches.iterdir())
  upload(browser, first)
  expected = predicted / first.name
  assert np.array_equal(displayed_translation(browser, first.name), np.asarray(Image.open(expected)))
  browser.find_element(By.ID, "png").click()
  downloaded = tmp_path / "downloads" / f"{first.stem}_optical.png"
  wait(lambda: downloaded.is_file() and not list(downloaded.parent.glob("*.crdownload")), "the PNG download")
  assert downloaded.read_bytes() == expected.read_bytes()  # predict.py's file, byte for byte
  browser.save_screenshot(str(tmp_path / "web_demo.png"))
  print(f"screenshot: {tmp_path / 'web_demo.png'}")

  not_an_image = tmp_path / "notes.png"
  not_an_image.write_text("a text file named like an image")
  upload(browser, not_an_image)
  wait(lambda: "cannot decode image notes.png" in browser.find_element(By.TAG_NAME, "body").text,
       "the error message in the page")
  upload(browser, second)
  assert np.array_equal(displayed_translation(browser, second.name), np.asarray(Image.open(predicted / second.name)))

  hosts = {json.loads(entry["message"])["message"]["params"]["request"]["url"].split("/")[2]
           for entry in browser.get_log("performance")
           if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"}
  assert hosts <= {url.split("/")[2], ""}, hosts  # the page fetched nothing from elsewhere ("": data: URLs)


def test_a_workdir_without_checkpoints_is_one_line_and_exit_status_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "sar2optical.demo", f"--workdir={tmp_path}"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(f"error: no checkpoints in {tmp_path}")


def test_an_upload_keeps_georeferencing_and_large_previews_are_downscaled(tiny_workdir, tmp_path):
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


def test_the_written_space_starts_and_answers(tiny_workdir, tmp_path):
  app = web_demo.write_space(tiny_workdir, tmp_path / "space")
  readme = (app.parent / "README.md").read_text()
  assert readme.startswith("---\n") and "sdk: gradio\n" in readme and "app_file: app.py\n" in readme
  assert any(line.startswith("jax") for line in (app.parent / "requirements.txt").read_text().splitlines())
  port = free_port()
  process = start([sys.executable, "app.py"], app.parent, {**ENV, "GRADIO_SERVER_PORT": str(port)})
  try:
    wait_until_serving(f"http://127.0.0.1:{port}/", process)
  finally:
    stop(process)
  with pytest.raises(Sar2OpticalError, match="not an empty folder"):
    web_demo.write_space(tiny_workdir, app.parent)
