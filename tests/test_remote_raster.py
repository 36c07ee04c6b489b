"""predict.py on a Cloud-Optimised GeoTIFF served over HTTP: read in windows through GDAL's virtual file system,
the same pixels as from the local file, and no more bytes than the file holds."""

import http.server
import re
import sys
import threading

import numpy as np
import pytest
import rasterio
from conftest import finish, start
from rasterio.transform import Affine


class _RangeServer(http.server.SimpleHTTPRequestHandler):
  """Serves a folder with HTTP range requests (which http.server alone does not), counting the bytes sent."""
  sent: list[int]  # set per server (`served`)

  def log_message(self, *args) -> None:
    del args

  def do_GET(self) -> None:
    path = self.translate_path(self.path)
    try:
      with open(path, "rb") as file:
        data = file.read()
    except OSError:
      self.send_error(404)
      return
    found = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
    if found:
      first, last = int(found.group(1)), int(found.group(2) or len(data) - 1)
      body = data[first:min(last, len(data) - 1) + 1]
      self.send_response(206)
      self.send_header("Content-Range", f"bytes {first}-{first + len(body) - 1}/{len(data)}")
    else:
      body = data
      self.send_response(200)
    self.send_header("Accept-Ranges", "bytes")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)
    self.sent.append(len(body))

  def do_HEAD(self) -> None:
    try:
      with open(self.translate_path(self.path), "rb") as file:
        size = len(file.read())
    except OSError:
      self.send_error(404)
      return
    self.send_response(200)
    self.send_header("Accept-Ranges", "bytes")
    self.send_header("Content-Length", str(size))
    self.end_headers()


@pytest.fixture
def served(tmp_path):
  """(URL of the folder, the folder, the byte counts sent): a local HTTP server with range requests."""
  folder = tmp_path / "served"
  folder.mkdir()
  handler = type("Handler", (_RangeServer,), {"sent": []})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}", folder, handler.sent
  server.shutdown()


def write_cog(path, size: int = 512) -> None:
  """A tiled, deflated, georeferenced uint8 GeoTIFF with overviews: the layout of a Cloud-Optimised GeoTIFF."""
  rng = np.random.default_rng(0)
  sar = (rng.gamma(2.0, 40.0, (size, size))).clip(0, 255).astype(np.uint8)
  profile = {"driver": "GTiff", "height": size, "width": size, "count": 1, "dtype": "uint8", "tiled": True,
             "blockxsize": 256, "blockysize": 256, "compress": "deflate", "crs": "EPSG:32633",
             "transform": Affine(10, 0, 500000, 0, -10, 5000000)}
  with rasterio.open(path, "w", **profile) as dataset:
    dataset.write(sar, 1)
    dataset.build_overviews([2, 4])


def test_predict_reads_a_remote_cog_in_windows_and_writes_what_the_local_file_gives(served, tiny_workdir, tmp_path):
  url, folder, sent = served
  write_cog(folder / "scene.tif")
  size = (folder / "scene.tif").stat().st_size
  outputs = {}
  for name, source in (("local", folder / "scene.tif"), ("remote", f"{url}/scene.tif")):
    status, log = finish(start([sys.executable, "predict.py", f"--workdir={tiny_workdir}", f"--input={source}",
                                f"--output={tmp_path / name}"]))
    assert status == 0, log[-3000:]
    with rasterio.open(tmp_path / name / "scene.tif") as dataset:
      outputs[name] = (dataset.read(), dataset.crs, dataset.transform)
  np.testing.assert_array_equal(outputs["remote"][0], outputs["local"][0])
  assert outputs["remote"][1:] == outputs["local"][1:]
  assert len(sent) > 1 and sum(sent) <= size, (sum(sent), size)  # range requests, never the whole file twice


def test_an_unreachable_remote_input_fails_by_name(served, tiny_workdir, tmp_path):
  url, _, _ = served
  status, log = finish(start([sys.executable, "predict.py", f"--workdir={tiny_workdir}",
                              f"--input={url}/missing.tif", f"--output={tmp_path / 'out'}"]))
  assert status == 1
  assert f"{url}/missing.tif" in log and "Traceback" not in log
