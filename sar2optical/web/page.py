"""The web demo: a Gradio page around a `Translator`, SAR in, the translation beside it, PNG and GeoTIFF out.

  from sar2optical.web import page
  page.serve(sar2optical.load("runs/pix2pix"), port=7860)     # http://127.0.0.1:7860

An upload is translated from the file Gradio stored, by `Translator.translate_file` into a GeoTIFF:
predict.py's code path, its tiles and its memory bounds (GeoTIFFs in windows), so the GeoTIFF is
predict.py's `--output_format=tiff` output and keeps the input's georeferencing. The PNG is that
GeoTIFF's pixels through predict.py's PNG writer: the bytes predict.py writes for the same file. The
page shows previews at most `PREVIEW_SIDE` pixels on a side (every n-th pixel of a larger scene),
read a band of rows at a time. As a network service the page is bounded by `Limits`: uploads of at
most `max_upload_mb` (Gradio refuses larger ones while they stream in), images of at most `max_pixels`
(read from the header, before anything is decoded), one translation at a time with at most `max_queue`
requests waiting (Gradio answers the rest "Queue is full"), so memory is one translation's whatever
the traffic. Bad input (too large, not an image, a band or value type that does not fit the chosen
units) is a message in the page; the server goes on. Nothing reaches the network: no analytics, no
share link, system fonts.
"""

import dataclasses
import pathlib
import shutil
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from sar2optical.core.errors import DataError, MissingExtra, Sar2OpticalError

try:  # first, so that a missing Gradio is said before the rest (JAX) is imported
  import gradio as gr
except ImportError as missing:
  raise MissingExtra("the web demo needs Gradio, an optional extra: pip install 'sar2optical[demo]' "
                     "(pip install -e '.[demo]' in a clone)") from missing

from sar2optical.data.images import IMAGE_SUFFIXES
from sar2optical.inference import raster
from sar2optical.inference.translator import SarOptions, Translator
from sar2optical.model.pixels import SAR_UNITS, SarScaling

#: The longest side of the previews in the page; the downloads are full size.
PREVIEW_SIDE = 1024
#: Example images offered at most.
MAX_EXAMPLES = 8
_RESULT_IMAGE = dict(format="png", interactive=False, scale=2, buttons=["download", "fullscreen"])
_BAND_TILES = 64  # preview rows read at a time, in units of the preview's stride
_THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])  # system fonts: nothing fetched


@dataclasses.dataclass(frozen=True)
class Limits:
  """What the server accepts: upload size (MiB), pixels per image, requests waiting behind the one translating."""
  max_upload_mb: int = 400  # a max_pixels float32 GeoTIFF, uncompressed (381 MiB)
  max_pixels: int = 100_000_000  # 10,000²: one translation peaks ~12 bytes a pixel above the idle server, 1.2 GB
  max_queue: int = 8


def preview_stride(height: int, width: int) -> int:
  """Every how many pixels a preview takes one, so that its longest side is at most PREVIEW_SIDE."""
  return -(-max(height, width) // PREVIEW_SIDE)


def sar_preview(path: pathlib.Path, sar: SarOptions) -> tuple[np.ndarray, int, int]:
  """(preview, height, width) of the SAR as the model sees it: SEN1-2 8-bit grey, invalid pixels 0,
  every `preview_stride`-th pixel of each `preview_stride`-th row."""
  scaling = SarScaling(sar.sar_units, sar.db_min, sar.db_max)
  with raster.io_environment(), raster.open_sar(path, sar.band) as reader:
    stride = preview_stride(reader.height, reader.width)
    rows = stride * _BAND_TILES
    parts = []
    for start in range(0, reader.height, rows):
      values, valid = reader.read_rows(start, min(start + rows, reader.height))
      pixels, backscatter = scaling.to_uint8(values[::stride, ::stride])
      parts.append(np.where(valid[::stride, ::stride] & backscatter, pixels, np.uint8(0)))
    return np.concatenate(parts), reader.height, reader.width


def write_png(geotiff: pathlib.Path, png: pathlib.Path, height: int, width: int) -> np.ndarray:
  """Writes the RGB of `geotiff` (height × width) to `png` with predict.py's PNG writer; returns its preview."""
  stride = preview_stride(height, width)
  writer = raster.create_writer(png, "png", height, width, raster.Georeference())
  parts = []
  for start, rgb in raster.rgb_rows(geotiff, stride * _BAND_TILES):
    writer.write_rows(start, rgb, np.ones(rgb.shape[:2], bool))
    parts.append(rgb[::stride, ::stride])
  writer.commit()
  return np.concatenate(parts)


@dataclasses.dataclass(frozen=True)
class Translated:
  """One upload translated: predict.py's GeoTIFF and PNG of it, and the previews the page shows."""
  geotiff: pathlib.Path
  png: pathlib.Path
  sar_preview: np.ndarray
  rgb_preview: np.ndarray
  height: int
  width: int

  def note(self, name: str, seconds: float) -> str:
    """One line for the page: what was translated, how fast, and whether the previews are downscaled."""
    text = f"{name}: {self.width}×{self.height} px, done in {seconds:.1f} s"
    stride = preview_stride(self.height, self.width)
    if stride > 1:
      text += f"; the previews are downscaled {stride}× (the downloads are full size)"
    return text


def check_pixels(path: pathlib.Path, band: str, max_pixels: int) -> None:
  """DataError naming `path` when its header declares more than `max_pixels` pixels; nothing is decoded.

  `raster.open_sar` reads the header only (and applies its own limits: Pillow's for PNG/JPEG, the
  declared size against the file's for TIFF).
  """
  with raster.io_environment(), raster.open_sar(path, band) as reader:
    height, width = reader.height, reader.width
  if height * width > max_pixels:
    raise DataError(f"{path} is {width}×{height} = {height * width:,} pixels, more than the {max_pixels:,} "
                    "this demo translates (--max_pixels)")


def translate_upload(translator: Translator, source: pathlib.Path, folder: pathlib.Path, sar: SarOptions,
                     max_pixels: int = Limits.max_pixels) -> Translated:
  """Translates the file `source` into `folder` (STEM_optical.tif and .png); Sar2OpticalError on bad input,
  over `max_pixels` included (checked before anything is decoded)."""
  check_pixels(source, sar.band, max_pixels)
  geotiff = translator.translate_file(source, folder / f"{source.stem}_optical.tif", **dataclasses.asdict(sar))
  sar_image, height, width = sar_preview(source, sar)
  png = geotiff.with_suffix(".png")
  return Translated(geotiff, png, sar_image, write_png(geotiff, png, height, width), height, width)


def find_examples(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """The first MAX_EXAMPLES images below `folder` (recursive, by path); DataError if there are none."""
  folder = pathlib.Path(folder).expanduser()
  images = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
  if not images:
    raise DataError(f"--examples: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
  return images[:MAX_EXAMPLES]


class _Page:
  """What the page's events call: the translator, and a folder for each translation until Gradio has served it."""

  def __init__(self, translator: Translator, max_pixels: int):
    self.translator, self.max_pixels = translator, max_pixels
    self._outputs = tempfile.TemporaryDirectory(prefix="sar2optical-demo-")

  def translate(self, upload: str | None, sar_units: str, db_min: float | None, db_max: float | None, band: str,
                progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """(SAR preview, RGB preview, PNG, GeoTIFF, note, folder) for an uploaded file; bad input → gr.Error."""
    del progress  # Gradio shows the translation's tqdm bar through it (track_tqdm)
    if upload is None:
      raise gr.Error("Upload a SAR image (PNG, JPEG or GeoTIFF) or pick an example first.")
    if db_min is None or db_max is None:
      raise gr.Error("Set both ends of the dB range.")
    source = pathlib.Path(upload)
    folder = pathlib.Path(tempfile.mkdtemp(dir=self._outputs.name))
    started = time.perf_counter()
    try:
      result = translate_upload(self.translator, source, folder,
                                SarOptions(sar_units, float(db_min), float(db_max), band.strip() or "1"),
                                self.max_pixels)
    except Sar2OpticalError as error:
      shutil.rmtree(folder)
      raise gr.Error(str(error).replace(str(source), source.name)) from None
    return (result.sar_preview, result.rgb_preview, str(result.png), str(result.geotiff),
            result.note(source.name, time.perf_counter() - started), str(folder))

  @staticmethod
  def forget(folder: str | None) -> None:
    """Removes a translation's folder once Gradio has copied its files into its own cache."""
    if folder:
      shutil.rmtree(folder, ignore_errors=True)


def _header(translator: Translator) -> str:
  return (f"## sar2optical: Sentinel-1 SAR → Sentinel-2-like RGB\n"
          f"Pix2Pix generator of step {translator.step}, translating in {translator.image_size}² tiles as "
          "predict.py does. Upload 8-bit SEN1-2 SAR (units uint8) or calibrated backscatter σ⁰/γ⁰ "
          "(a float GeoTIFF: units linear or dB, scaled over the dB range); a GeoTIFF's result keeps its "
          "georeferencing. The first translation also compiles the generator.")


def build(translator: Translator, examples: Sequence[pathlib.Path] = (),
          max_pixels: int = Limits.max_pixels) -> gr.Blocks:
  """The page: upload (or an example) and SAR options; SAR and translation side by side; PNG and GeoTIFF."""
  page = _Page(translator, max_pixels)
  with gr.Blocks(title="sar2optical", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
    gr.Markdown(_header(translator))
    with gr.Row():
      with gr.Column(scale=1):
        upload = gr.File(label="SAR image: PNG, JPEG or (Geo)TIFF", file_types=list(IMAGE_SUFFIXES),
                         type="filepath", elem_id="upload")
        units = gr.Radio(list(SAR_UNITS), value="uint8", label="SAR units", elem_id="units")
        with gr.Row():
          db_min = gr.Number(-25.0, label="dB → 0", min_width=80)
          db_max = gr.Number(0.0, label="dB → 255", min_width=80)
        band = gr.Textbox("1", label="TIFF band: 1-based index or description (VV)")
        button = gr.Button("Translate", variant="primary")
      sar_image = gr.Image(label="SAR, as the model sees it", **_RESULT_IMAGE, elem_id="sar")
      rgb_image = gr.Image(label="Translation", **_RESULT_IMAGE, elem_id="translation")
    note = gr.Markdown(elem_id="note")
    with gr.Row():
      png = gr.DownloadButton("Download PNG", elem_id="png")
      geotiff = gr.DownloadButton("Download GeoTIFF", elem_id="geotiff")
    folder = gr.State()
    inputs, outputs = [upload, units, db_min, db_max, band], [sar_image, rgb_image, png, geotiff, note, folder]
    gr.on([upload.upload, button.click], page.translate, inputs, outputs).then(page.forget, folder)
    if examples:
      chosen = gr.Examples([[str(path)] for path in examples], [upload], label="Examples (8-bit SAR: units uint8)")
      chosen.load_input_event.then(page.translate, inputs, outputs).then(page.forget, folder)
  return blocks


def serve(translator: Translator, *, host: str | None = "127.0.0.1", port: int | None = None,
          examples: Sequence[pathlib.Path] = (), limits: Limits = Limits()) -> None:
  """Builds the page and serves it on host:port until stopped, one translation at a time, without a share link.

  host or port None: Gradio's own choice (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as a Hugging Face
  Space sets them, else 127.0.0.1 and the first free port from 7860). Requests beyond `limits` are refused.
  """
  blocks = build(translator, examples, limits.max_pixels)
  blocks.queue(default_concurrency_limit=1, max_size=limits.max_queue)
  blocks.launch(server_name=host, server_port=port, share=False, ssr_mode=False, theme=_THEME,
                max_file_size=limits.max_upload_mb * 2**20,  # Gradio's MB: MiB
                allowed_paths=sorted({str(path.parent) for path in examples}))
