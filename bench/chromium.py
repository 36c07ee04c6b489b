"""Headless Chromium from the Debian packages, driven by Selenium, on the web demo (`sar2optical.commands.demo`).

What bench/demo_latency.py, bench/demo_concurrency.py (`import chromium`: their folder) and tests/test_web_demo.py
(`from bench import chromium`) share; it imports nothing of tests/ or of the benchmarks. Nothing is downloaded:
Selenium is handed the browser and its driver, so Selenium Manager never runs. Waits raise TimeoutError naming
what did not come.
"""

import base64
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = pathlib.Path("/usr/bin/chromium"), pathlib.Path("/usr/bin/chromedriver")


def unavailable() -> str | None:
  """Why the browser cannot be driven here, or None."""
  try:
    import selenium  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return "selenium is not installed (pip install selenium)"
  if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    return f"no {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
  return None


def open_browser(downloads: pathlib.Path):
  """A headless Chromium (1400×1000) that downloads into `downloads` and logs its network requests."""
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = str(CHROMIUM)
  for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
    options.add_argument(argument)
  options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                            "download.prompt_for_download": False})
  options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
  return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def start(args: list[str], cwd: pathlib.Path, **env: str) -> subprocess.Popen:
  """A server process on the CPU, its output collected for when it fails."""
  return subprocess.Popen(args, cwd=cwd, env={**os.environ, "JAX_PLATFORMS": "cpu", **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def start_demo(workdir: pathlib.Path, port: int, *flags: str) -> subprocess.Popen:
  return start([sys.executable, "-m", "sar2optical.commands.demo", f"--workdir={workdir}", f"--port={port}", *flags], REPO)


def stop(process: subprocess.Popen) -> None:
  process.terminate()
  try:
    process.wait(timeout=20)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()


def wait(condition, what: str, timeout_s: float):
  """The first truthy result of `condition()`, polled every 0.1 s."""
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if result := condition():
      return result
    time.sleep(0.1)
  raise TimeoutError(f"waited {timeout_s} s for {what}")


def wait_until_serving(url: str, process: subprocess.Popen, timeout_s: float) -> None:
  """Returns once `url` answers 200; raises with the process's output if it ends first."""
  def answers() -> bool:
    if process.poll() is not None:
      raise RuntimeError(f"the server ended with status {process.returncode}:\n{process.stdout.read()[-3000:]}")
    try:
      with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200
    except OSError:
      return False
  wait(answers, f"{url} to answer", timeout_s)


def memory_mb(pid: int, field: str) -> float:
  """A process's memory in MiB from /proc/PID/status: VmRSS (resident now) or VmHWM (its peak so far)."""
  status = pathlib.Path(f"/proc/{pid}/status").read_text()
  return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:"))) / 1024


class PeakRss:
  """The peak resident memory (VmRSS, MiB) of process `pid`, sampled every 20 ms while the context is open."""

  def __init__(self, pid: int):
    self.pid, self.peak_mb, self._done = pid, 0.0, threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)

  def _sample(self) -> None:
    while not self._done.wait(0.02):
      self.peak_mb = max(self.peak_mb, memory_mb(self.pid, "VmRSS"))

  def __enter__(self) -> "PeakRss":
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._done.set()
    self._thread.join()


def submit(client, path: pathlib.Path):
  """A gradio_client Job: the page's translation of the 8-bit SAR `path` (units uint8), as an upload starts it.

  Its result is (SAR preview, translation preview, PNG, GeoTIFF, note), files downloaded by the client;
  a request the full queue refuses raises gradio_client's QueueError.
  """
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top
  return client.submit(handle_file(str(path)), "uint8", -25.0, 0.0, "1", api_name="/translate")


def post_file(url: str, path: pathlib.Path) -> bytes:
  """POSTs `path` to `url` as multipart/form-data field `files`, as a browser's upload does; the answer's body."""
  boundary = "sar2optical-test-boundary"
  head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n'
          "Content-Type: application/octet-stream\r\n\r\n")
  body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
  request = urllib.request.Request(url, data=body,
                                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
  with urllib.request.urlopen(request, timeout=60) as response:
    return response.read()


def upload(driver, path: pathlib.Path, timeout_s: float = 30) -> None:
  """Clears the upload field if it holds a file, then uploads `path` (which starts the translation)."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  for clear in driver.find_elements(By.CSS_SELECTOR, "#upload button[aria-label=Clear]"):
    clear.click()
  field = wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), "the upload field",
               timeout_s)
  field[0].send_keys(str(path))


def choose_units(driver, units: str) -> None:
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  driver.find_element(By.CSS_SELECTOR, f"#units input[value='{units}']").click()


def pick_example(driver, name: str) -> None:
  """Clicks the thumbnail of the example named `name` (which starts its translation)."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  driver.find_element(By.CSS_SELECTOR, f"#examples button img[alt='{name}']").click()


def page_text(driver) -> str:
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  return driver.find_element(By.TAG_NAME, "body").text


def shown_translation(driver, name: str, timeout_s: float) -> np.ndarray:
  """The pixels of the translation the page shows once its note names `name`, fetched by the page itself."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  wait(lambda: name in driver.find_element(By.ID, "note").text, f"the translation of {name}", timeout_s)
  source = driver.find_element(By.CSS_SELECTOR, "#translation img").get_attribute("src")
  encoded = driver.execute_async_script("""
      const [source, done] = arguments;
      fetch(source).then(r => r.arrayBuffer()).then(buffer => {
        let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
        done(btoa(text)); });""", source)
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def requested_hosts(driver) -> set[str]:
  """host:port of every http(s)/ws(s) request the page has sent so far (data: and blob: URLs are not requests)."""
  messages = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
  urls = (urllib.parse.urlsplit(message["params"]["request"]["url"]) for message in messages
          if message["method"] == "Network.requestWillBeSent")
  return {url.netloc for url in urls if url.scheme in ("http", "https", "ws", "wss")}
