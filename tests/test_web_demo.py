"""The web demo in a real browser (headless Chromium from the Debian packages, driven by Selenium): the page says
what model it serves, an upload gives predict.py's bytes, bad input is one message in the page and one line in
the server's log, and the server goes on; the Space starts and says what model it serves.
As a network service: a burst of clients (gradio_client) queues up to --max_queue and the rest are refused
while memory stays bounded; images over --max_pixels and uploads over --max_upload_mb are refused in the page."""

import base64
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import rasterio
from conftest import REPO, SEN12_ROOT, requires_sen12, tiny_config
from PIL import Image
from rasterio.transform import from_origin

import sar2optical
from bench import chromium  # the browser and the server, shared with bench/demo_*.py
from sar2optical.core.errors import Sar2OpticalError
from sar2optical.inference.translator import SarOptions
from sar2optical.interop import stablehlo

WAIT_S = 120
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
# The limited server: 1 translation running + MAX_QUEUE waiting; a 1,024² mosaic (16 patches, ~0.8 MB) fits.
MAX_QUEUE, MAX_UPLOAD_MB, MAX_PIXELS, BURST = 4, 1, 1_100_000, 12


@pytest.fixture(scope="module")
def web_demo():
  """The module sar2optical.web.page; skips without Gradio (the [demo] extra, which the test extra includes)."""
  pytest.importorskip("gradio", reason="gradio (the [demo] extra) is not installed")
  from sar2optical.web import page as module
  return module


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> pathlib.Path:
  """Two real SEN1-2 SAR patches (256², 8-bit) in a folder of their own."""
  folder = tmp_path_factory.mktemp("patches")
  for terrain in ("agri", "urban"):
    shutil.copy(sorted((SEN12_ROOT / terrain / "s1").glob("*.png"))[0], folder)
  return folder


@pytest.fixture(scope="module")
def validated_workdir(demo_root, tmp_path_factory) -> pathlib.Path:
  """The tiny workdir's run (2 steps on the demo set) with a validation at step 2, for the page to report."""
  from sar2optical.training import loop  # pylint: disable=g-import-not-at-top (keeps collection light)
  workdir = tmp_path_factory.mktemp("validated")
  loop.train(tiny_config(demo_root, num_train_steps=2, checkpoint_every_steps=2, log_every_steps=1,
                         sample_every_steps=2, eval_every_steps=2), workdir)
  return workdir


@pytest.fixture(scope="module")
def demo_server(web_demo, validated_workdir, patches):
  """`python -m sar2optical.commands.demo` on the validated workdir at a free port: (process, url), started, not
  waited for."""
  port = chromium.free_port()
  process = chromium.start_demo(validated_workdir, port, f"--examples={patches}")
  yield process, f"http://127.0.0.1:{port}/"
  chromium.stop(process)


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory) -> pathlib.Path:
  """A 1,024² 8-bit SAR PNG tiled from 16 real SEN1-2 patches, in a folder of its own: under the limits."""
  tiles = [np.asarray(Image.open(path).convert("L")) for path in sorted((SEN12_ROOT / "urban" / "s1").glob("*.png"))]
  path = tmp_path_factory.mktemp("mosaic") / "mosaic.png"
  Image.fromarray(np.vstack([np.hstack(tiles[row * 4:row * 4 + 4]) for row in range(4)])).save(path)
  return path


def run_predict(workdir: pathlib.Path, inputs: pathlib.Path, output: pathlib.Path) -> pathlib.Path:
  """predict.py's PNGs for `inputs` in `output`, from the script itself."""
  subprocess.run([sys.executable, str(REPO / "predict.py"), f"--workdir={workdir}", f"--input={inputs}",
                  f"--output={output}"], check=True, cwd=REPO, env=ENV, capture_output=True, timeout=600)
  return output


@pytest.fixture(scope="module")
def predicted(validated_workdir, patches, tmp_path_factory) -> pathlib.Path:
  """predict.py's PNGs for the patches with the demo server's model (while the demo starts)."""
  return run_predict(validated_workdir, patches, tmp_path_factory.mktemp("predicted"))


@pytest.fixture(scope="module")
def limited_server(web_demo, tiny_workdir):
  """The demo with small limits (MAX_QUEUE, MAX_UPLOAD_MB, MAX_PIXELS) at a free port: (process, url), serving."""
  port = chromium.free_port()
  process = chromium.start_demo(tiny_workdir, port, f"--max_queue={MAX_QUEUE}", f"--max_upload_mb={MAX_UPLOAD_MB}",
                                f"--max_pixels={MAX_PIXELS}")
  url = f"http://127.0.0.1:{port}/"
  try:
    chromium.wait_until_serving(url, process, WAIT_S)
    yield process, url
  finally:
    chromium.stop(process)


@pytest.fixture
def browser(tmp_path):
  if reason := chromium.unavailable():
    pytest.skip(reason)
  driver = chromium.open_browser(tmp_path / "downloads")
  yield driver
  driver.quit()


@requires_sen12
def test_the_page_translates_as_predict_py_and_survives_bad_input(demo_server, predicted, patches, browser,
                                                                  validated_workdir, demo_root, tmp_path):
  process, url = demo_server
  chromium.wait_until_serving(url, process, WAIT_S)
  browser.get(url)
  first, second = sorted(patches.iterdir())
  about = " ".join(chromium.wait(lambda: browser.find_elements("id", "about"), "the header", WAIT_S)[0].text.split())
  metrics = [json.loads(line) for line in (validated_workdir / "metrics.jsonl").read_text().splitlines()]
  val_psnr = next(record["val_psnr"] for record in metrics if "val_psnr" in record)
  assert (f"The model: Pix2Pix generator at step 2 of 2; a U-Net of 3 levels on 32² tiles; trained on {demo_root} "
          f"(synthetic demo data); validation PSNR {val_psnr:.2f} dB at step 2." in about)
  assert ("A demonstration model: tiny (3 levels at 32²; the original's: 8 at 256²), trained on synthetic data. "
          in about)
  thumbnails = browser.find_elements("css selector", "#examples button img")
  assert [image.get_attribute("alt") for image in thumbnails] == [first.name, second.name]
  for image, patch in zip(thumbnails, (first, second), strict=True):  # the SAR, every 2nd pixel: 128² at most
    assert np.array_equal(fetched_pixels(browser, image.get_attribute("src"))[..., 0],
                          np.asarray(Image.open(patch))[::2, ::2])
  assert not db_range_shown(browser)  # units uint8
  for units in ("db", "linear", "uint8"):
    chromium.choose_units(browser, units)
    chromium.wait(lambda units=units: db_range_shown(browser) == (units != "uint8"), f"the dB range for {units}",
                  WAIT_S)
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
  time.sleep(1)  # time for a second message, were there one
  assert [toast.text.splitlines()[-1] for toast in browser.find_elements("css selector", ".toast-body")] == [
      "cannot decode image notes.png: cannot identify image file 'notes.png'"]
  assert browser.find_element("id", "note").text == ""  # not the note of the previous upload
  chromium.upload(browser, second)
  shown = chromium.shown_translation(browser, second.name, WAIT_S)
  assert np.array_equal(shown, np.asarray(Image.open(predicted / second.name)))
  chromium.choose_units(browser, "db")
  chromium.pick_example(browser, first.name)  # --examples=the patches' folder; sets units uint8
  assert np.array_equal(chromium.shown_translation(browser, first.name, WAIT_S), np.asarray(Image.open(expected)))
  assert chromium.requested_hosts(browser) == {url.split("/")[2]}  # nothing fetched from elsewhere
  chromium.stop(process)
  log = process.stdout.read()
  assert f"serving the web demo on {url} (Ctrl-C stops it)" in log
  refused = [line for line in log.splitlines() if "refused" in line]
  assert len(refused) == 1, log[-3000:]
  assert refused[0].endswith("] refused: cannot decode image notes.png: cannot identify image file 'notes.png'")
  for noise in ("Traceback", "NotGeoreferencedWarning", "share=True", "HTTP Request"):
    assert noise not in log, log[-3000:]


def db_range_shown(browser) -> bool:
  return any(element.is_displayed() for element in browser.find_elements("id", "db_range"))


def fetched_pixels(browser, source: str) -> np.ndarray:
  """The pixels of an image of the page, fetched by the page itself."""
  encoded = browser.execute_async_script("""
      const [source, done] = arguments;
      fetch(source).then(r => r.arrayBuffer()).then(buffer => {
        let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
        done(btoa(text)); });""", source)
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def test_without_gradio_the_command_says_how_to_install_it(tmp_path):
  code = ("import runpy, sys; sys.modules['gradio'] = None; sys.argv = ['demo', '--workdir=nowhere']; "
          "runpy.run_module('sar2optical.demo', run_name='__main__')")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2 and "pip install 'sar2optical[demo]'" in result.stderr.strip().splitlines()[-1]


def test_a_workdir_without_checkpoints_is_one_line_and_exit_status_2(web_demo, tmp_path):
  result = subprocess.run([sys.executable, "-m", "sar2optical.commands.demo", f"--workdir={tmp_path}"], cwd=REPO,
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
  from sar2optical.web import space  # pylint: disable=g-import-not-at-top (needs Gradio: the fixture checks)
  app = space.write_space(tiny_workdir, tmp_path / "space")
  readme = (app.parent / "README.md").read_text()
  assert readme.startswith("---\n") and "sdk: gradio\n" in readme and "app_file: app.py\n" in readme
  model = "**The model**: Pix2Pix generator at step 2 of 2; a U-Net of 3 levels on 32² tiles; trained on "
  assert model in readme and "(synthetic demo data); no validation PSNR recorded." in readme
  assert any(line.startswith("jax") for line in (app.parent / "requirements.txt").read_text().splitlines())
  port = chromium.free_port()
  process = chromium.start([sys.executable, "app.py"], app.parent, GRADIO_SERVER_PORT=str(port))
  try:
    chromium.wait_until_serving(f"http://127.0.0.1:{port}/", process, WAIT_S)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as response:
      page = json.loads(response.read())  # the page's components, its header among them
    assert any(model in str(component.get("props", {}).get("value")) for component in page["components"])
  finally:
    chromium.stop(process)
  with pytest.raises(Sar2OpticalError, match="not an empty folder"):
    space.write_space(tiny_workdir, app.parent)


@requires_sen12
def test_a_burst_beyond_the_queue_is_refused_the_rest_translate_and_memory_stays_bounded(limited_server, mosaic,
                                                                                        tiny_workdir, tmp_path):
  from gradio_client import Client  # pylint: disable=g-import-not-at-top (with Gradio only)
  from gradio_client.utils import QueueError  # pylint: disable=g-import-not-at-top
  process, url = limited_server
  expected = (run_predict(tiny_workdir, mosaic.parent, tmp_path / "predicted") / mosaic.name).read_bytes()
  clients = [Client(url, verbose=False, download_files=str(tmp_path / f"client{i}")) for i in range(BURST)]

  def outcome(job) -> bytes | str:
    try:
      return pathlib.Path(job.result(timeout=WAIT_S)[2]).read_bytes()  # the PNG download
    except QueueError as refused:
      return str(refused)

  assert outcome(chromium.submit(clients[0], mosaic)) == expected  # compiles: one translation's peak is in VmHWM
  one_translation_mb = chromium.memory_mb(process.pid, "VmHWM")
  with chromium.PeakRss(process.pid) as burst:
    outcomes = [outcome(job) for job in [chromium.submit(client, mosaic) for client in clients]]
  refused = [result for result in outcomes if isinstance(result, str)]
  translated = [result for result in outcomes if isinstance(result, bytes)]
  print(f"{len(translated)} translated, {len(refused)} refused; peak RSS {burst.peak_mb:.0f} MiB in the burst, "
        f"{one_translation_mb:.0f} MiB with one translation")
  assert set(refused) == {"Queue is full! Please try again."} and MAX_QUEUE + 1 <= len(translated) < BURST
  assert all(png == expected for png in translated)
  assert burst.peak_mb < one_translation_mb + 64  # translations run one at a time; the waiting hold a path each
  assert outcome(chromium.submit(clients[0], mosaic)) == expected  # and the server goes on


@requires_sen12
def test_an_image_over_max_pixels_is_refused_in_the_page_and_the_next_translates(limited_server, patches,
                                                                                   predicted, browser, tmp_path):
  process, url = limited_server
  browser.get(url)
  too_many = tmp_path / "wide.png"
  Image.new("L", (1200, 1000)).save(too_many)
  chromium.upload(browser, too_many)
  message = "wide.png is 1200×1000 = 1,200,000 pixels, more than the 1,100,000 this demo translates (--max_pixels)"
  chromium.wait(lambda: message in chromium.page_text(browser), "the error in the page", WAIT_S)
  first = sorted(patches.iterdir())[0]
  chromium.upload(browser, first)
  assert np.array_equal(chromium.shown_translation(browser, first.name, WAIT_S),
                        np.asarray(Image.open(predicted / first.name)))
  assert process.poll() is None


@requires_sen12
def test_an_upload_over_max_upload_mb_is_refused_in_the_page_and_by_the_server(limited_server, patches, predicted,
                                                                               browser, tmp_path):
  process, url = limited_server
  browser.get(url)
  too_big = tmp_path / "huge.png"
  too_big.write_bytes(np.random.default_rng(0).bytes(MAX_UPLOAD_MB * 2**20 + 1))
  chromium.upload(browser, too_big)
  message = 'File(s) exceed the maximum allowed size of 1.0 Mb: "huge.png"'
  chromium.wait(lambda: message in chromium.page_text(browser), "the error in the page", WAIT_S)
  with pytest.raises(urllib.error.HTTPError, match="413") as refused:  # a client that skips the page's check
    chromium.post_file(f"{url}gradio_api/upload", too_big)
  assert b"exceeded maximum allowed size" in refused.value.read()
  second = sorted(patches.iterdir())[1]
  chromium.upload(browser, second)
  assert np.array_equal(chromium.shown_translation(browser, second.name, WAIT_S),
                        np.asarray(Image.open(predicted / second.name)))
  assert process.poll() is None


def test_max_pixels_is_checked_from_the_header_of_a_geotiff_and_a_png(web_demo, tmp_path):
  scene = tmp_path / "scene.tif"
  with rasterio.open(scene, "w", driver="GTiff", count=2, height=1000, width=1200, dtype="float32", tiled=True,
                     compress="deflate") as dataset:
    dataset.write(np.zeros((2, 1000, 1200), np.float32))  # a few kB on disk
    dataset.descriptions = ("VV", "VH")
  web_demo.check_pixels(scene, "VH", 1_200_000)
  with pytest.raises(Sar2OpticalError, match=rf"^{scene} is 1200×1000 = 1,200,000 pixels, more than the 1,199,999 "):
    web_demo.check_pixels(scene, "VH", 1_199_999)
  with pytest.raises(Sar2OpticalError, match="no band 'HH'"):
    web_demo.check_pixels(scene, "HH", 1_200_000)
  image = tmp_path / "image.png"
  Image.new("L", (1200, 1000)).save(image)
  with pytest.raises(Sar2OpticalError, match=r"image.png is 1200×1000 = 1,200,000 pixels"):
    web_demo.check_pixels(image, "1", 10**6)


def test_an_exported_artifact_is_described_by_its_network_and_a_full_size_model_without_a_caveat(
    web_demo, tiny_workdir, tmp_path):
  artifact = stablehlo.export_workdir(tiny_workdir, tmp_path / "generator.jax", platforms=("cpu",))
  about = web_demo.About.of(artifact, sar2optical.load(artifact))
  assert about == web_demo.About(2, 32, 3)
  assert about.markdown().startswith(
      "**The model**: Pix2Pix generator at step 2; a U-Net of 3 levels on 32² tiles; its training data not recorded; "
      "no validation PSNR recorded.\n\n**A demonstration model**: tiny (3 levels at 32²; the original's: 8 at 256²). ")
  full = web_demo.About(87_500, 256, 8, 87_500, "/data/v_2", False, 21.5, 87_000)
  assert full.markdown() == ("**The model**: Pix2Pix generator at step 87,500 of 87,500; a U-Net of 8 levels on "
                             "256² tiles; trained on `/data/v_2`; validation PSNR 21.50 dB at step 87,000.")
