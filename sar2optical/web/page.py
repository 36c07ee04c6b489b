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
units) is one message in the page and one line in the server's log; the server goes on. The page's
header says what model it serves (`About`). Nothing reaches the network: no analytics, no share link,
system fonts.
"""

import dataclasses
import functools
import json
import logging as python_logging
import pathlib
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence

import numpy as np
from absl import logging
from rasterio.errors import NotGeoreferencedWarning

from sar2optical.core.errors import DataError, MissingExtra, Sar2OpticalError

try:  # first, so that a missing Gradio is said before the rest (JAX) is imported
  import gradio as gr
except ImportError as missing:
  raise MissingExtra("the web demo needs Gradio, an optional extra: pip install 'sar2optical[demo]' "
                     "(pip install -e '.[demo]' in a clone)") from missing

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import config_from_metadata
from sar2optical.configs import fields
from sar2optical.core import storage
from sar2optical.data.images import IMAGE_SUFFIXES
from sar2optical.inference import raster
from sar2optical.inference.translator import SarOptions, Translator
from sar2optical.model.pixels import SAR_UNITS, SarScaling

#: The longest side of the previews in the page; the downloads are full size.
PREVIEW_SIDE = 1024
#: The longest side of an example's thumbnail.
THUMBNAIL_SIDE = 128
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


def preview_stride(height: int, width: int, side: int = PREVIEW_SIDE) -> int:
  """Every how many pixels a preview takes one, so that its longest side is at most `side`."""
  return -(-max(height, width) // side)


def sar_preview(path: pathlib.Path, sar: SarOptions, side: int = PREVIEW_SIDE) -> tuple[np.ndarray, int, int]:
  """(preview, height, width) of the SAR as the model sees it: SEN1-2 8-bit grey, invalid pixels 0,
  every `preview_stride`-th pixel of each `preview_stride`-th row (at most `side` on a side)."""
  scaling = SarScaling(sar.sar_units, sar.db_min, sar.db_max)
  with raster.io_environment(), raster.open_sar(path, sar.band) as reader:
    stride = preview_stride(reader.height, reader.width, side)
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
  with warnings.catch_warnings():  # the GeoTIFF of a PNG or JPEG has no georeferencing to speak of
    warnings.simplefilter("ignore", NotGeoreferencedWarning)
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


def thumbnail(example: pathlib.Path) -> np.ndarray:
  """An example's SAR as the model sees it with units uint8, at most THUMBNAIL_SIDE pixels on a side;
  DataError naming it when it is not 8-bit SAR."""
  try:
    return sar_preview(example, SarOptions(), THUMBNAIL_SIDE)[0]
  except Sar2OpticalError as error:
    raise DataError(f"--examples: {error}") from None


_ORIGINAL = fields.default_config()  # the original's generator: 8 levels at 256²


@dataclasses.dataclass(frozen=True)
class About:
  """What the page says of the model it serves; None where the model's files do not record it.

  Attributes:
    step: the training step of the weights.
    image_size: the side of the tiles it translates.
    levels: the U-Net's depth.
    planned_steps: the run's num_train_steps.
    data: what it was trained on: the data root, or the TFDS build.
    synthetic: whether that is the synthetic demo set (`sar2optical-demo-data`); None if unknown here.
    val_psnr, val_step: the validation PSNR (dB) of the last validation at or before `step`, and its step.
    averaging: what each translated tile is the mean of (`Translator.averaging`), None when off.
  """
  step: int
  image_size: int
  levels: int | None = None
  planned_steps: int | None = None
  data: str | None = None
  synthetic: bool | None = None
  val_psnr: float | None = None
  val_step: int | None = None
  averaging: str | None = None

  @classmethod
  def of(cls, model: str | pathlib.Path, translator: Translator) -> "About":
    """What the files of `model` (a path that `sar2optical.load` takes) record of `translator`'s generator:
    an exported artifact its network; a workdir or step directory also the data, the validation PSNR and the
    translator's averaging when on."""
    path = storage.as_path(model, "the model")
    if path.is_file():
      sidecar = json.loads((path.parent / f"{path.name}.json").read_text())
      return cls(translator.step, translator.image_size, sidecar["model"]["levels"])
    workdir = storage.resolved(path).parent.parent if manager.is_step_dir(path) else path
    checkpoints = manager.Checkpoints(workdir, create=False)
    try:
      config = config_from_metadata(checkpoints.metadata(translator.step))
    finally:
      checkpoints.close()
    if config.data.source == "tfds":
      data, synthetic = f"the TFDS build sen1_2/{config.data.tfds_config}", None
    else:
      data, synthetic = config.data.root, _is_demo_set(pathlib.Path(config.data.root).expanduser())
    scores = _validation_psnr(workdir, translator.step)
    averaging = translator.averaging.describe() if translator.averaging.on else None
    return cls(translator.step, translator.image_size, config.model.levels, config.num_train_steps, data, synthetic,
               *(scores or (None, None)), averaging)

  @classmethod
  def read(cls, path: str | pathlib.Path) -> "About":
    """An About that `write` wrote."""
    return cls(**json.loads(pathlib.Path(path).read_text()))

  def write(self, path: str | pathlib.Path) -> None:
    pathlib.Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

  def caveat(self) -> str | None:
    """Why its translations mean little (untrained, tiny beside the original, synthetic data), or None."""
    notes = ["untrained"] if self.step == 0 else []
    levels = self.levels or _ORIGINAL.model.levels
    if levels < _ORIGINAL.model.levels or self.image_size < _ORIGINAL.image_size:
      notes.append(f"tiny ({levels} levels at {self.image_size}²; the original's: {_ORIGINAL.model.levels} at "
                   f"{_ORIGINAL.image_size}²)")
    if self.synthetic:
      notes.append("trained on synthetic data")
    return ", ".join(notes) if notes else None

  def markdown(self) -> str:
    """The model in a few lines: step, network and tiles, training data, validation PSNR, averaging when on, and
    any caveat."""
    facts = [f"Pix2Pix generator at step {self.step:,}" + (f" of {self.planned_steps:,}" if self.planned_steps else ""),
             "a U-Net" + (f" of {self.levels} levels" if self.levels else "") + f" on {self.image_size}² tiles",
             (f"trained on `{self.data}`" + (" (synthetic demo data)" if self.synthetic else "") if self.data
              else "its training data not recorded"),
             (f"validation PSNR {self.val_psnr:.2f} dB at step {self.val_step:,}" if self.val_psnr is not None
              else "no validation PSNR recorded")]
    facts += [f"each translated tile the {self.averaging}"] if self.averaging else []
    text = "**The model**: " + "; ".join(facts) + "."
    if caveat := self.caveat():
      text += (f"\n\n**A demonstration model**: {caveat}. Its translations show what the page does, not what "
               "SAR-to-optical translation can do.")
    return text


def _is_demo_set(root: pathlib.Path) -> bool | None:
  """Whether `root` is the synthetic demo set (its README.md says so); None where it is not found here."""
  try:
    return (root / "README.md").read_text(errors="replace").startswith("# SYNTHETIC")
  except OSError:
    return False if root.is_dir() else None


def _validation_psnr(workdir: storage.Path, step: int) -> tuple[float, int] | None:
  """(PSNR, step) of the last validation at or before `step` in WORKDIR/metrics.jsonl; None if there is none."""
  try:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
  except OSError:
    return None
  scores = {}
  for line in lines:
    record = json.loads(line)
    if "val_psnr" in record and record["step"] <= step:
      scores[record["step"]] = record["val_psnr"]
  return (scores[last], last) if (last := max(scores, default=None)) is not None else None


def _refused(message: str) -> gr.Error:
  """The page's one message for bad input, and one line in the server's log instead of a traceback."""
  logging.warning("refused: %s", message)
  return gr.Error(message, print_exception=False)


class _Page:
  """What the page's events call: the translator, and a folder for each translation until Gradio has served it."""

  def __init__(self, translator: Translator, max_pixels: int, examples: Sequence[pathlib.Path]):
    self.translator, self.max_pixels, self.examples = translator, max_pixels, examples
    self._outputs = tempfile.TemporaryDirectory(prefix="sar2optical-demo-")

  def translate(self, upload: str | None, sar_units: str, db_min: float | None, db_max: float | None, band: str,
                progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """(SAR preview, RGB preview, PNG, GeoTIFF, note, folder) for an uploaded file; bad input → gr.Error."""
    del progress  # Gradio shows the translation's tqdm bar through it (track_tqdm)
    if upload is None:
      raise _refused("Upload a SAR image (PNG, JPEG or GeoTIFF) or pick an example first.")
    if db_min is None or db_max is None:
      raise _refused("Set both ends of the dB range.")
    source = pathlib.Path(upload)
    folder = pathlib.Path(tempfile.mkdtemp(dir=self._outputs.name))
    started = time.perf_counter()
    try:
      result = translate_upload(self.translator, source, folder,
                                SarOptions(sar_units, float(db_min), float(db_max), band.strip() or "1"),
                                self.max_pixels)
    except Sar2OpticalError as error:
      shutil.rmtree(folder)
      raise _refused(str(error).replace(str(source), source.name)) from None
    return (result.sar_preview, result.rgb_preview, str(result.png), str(result.geotiff),
            result.note(source.name, time.perf_counter() - started), str(folder))

  @staticmethod
  def clear() -> tuple:
    """Empties the previews, downloads and note of the last translation while the next one runs."""
    return None, None, None, None, ""

  def pick(self, chosen: gr.SelectData) -> tuple[str, str]:
    """(upload, units) for the example clicked: the file, and uint8 as the examples are 8-bit SAR."""
    return str(self.examples[chosen.index]), "uint8"

  @staticmethod
  def forget(folder: str | None) -> None:
    """Removes a translation's folder once Gradio has copied its files into its own cache."""
    if folder:
      shutil.rmtree(folder, ignore_errors=True)


_USAGE = ("Upload 8-bit SEN1-2 SAR (units uint8) or calibrated backscatter σ⁰/γ⁰ (a float GeoTIFF: units linear or "
          "dB, scaled over the dB range); it is translated in tiles as predict.py does, and a GeoTIFF's result keeps "
          "its georeferencing. The first translation also compiles the generator.")


def build(translator: Translator, examples: Sequence[pathlib.Path] = (), max_pixels: int = Limits.max_pixels,
          about: About | None = None) -> gr.Blocks:
  """The page: what model it serves (`about`; else the translator's step and tile size); upload (or an example)
  and SAR options; SAR and translation side by side; PNG and GeoTIFF."""
  page = _Page(translator, max_pixels, examples)
  about = about or About(translator.step, translator.image_size)
  with gr.Blocks(title="sar2optical", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
    gr.Markdown(f"## sar2optical: Sentinel-1 SAR → Sentinel-2-like RGB\n{about.markdown()}\n\n{_USAGE}",
                elem_id="about")
    with gr.Row():
      with gr.Column(scale=1):
        upload = gr.File(label="SAR image: PNG, JPEG or (Geo)TIFF", file_types=list(IMAGE_SUFFIXES),
                         type="filepath", elem_id="upload")
        units = gr.Radio(list(SAR_UNITS), value="uint8", label="SAR units", elem_id="units")
        with gr.Row(visible=False, elem_id="db_range") as db_range:  # for backscatter: linear is scaled in dB too
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
    if examples:
      gallery = gr.Gallery([(thumbnail(path), path.name) for path in examples], format="png",
                           label="Examples (8-bit SAR: units uint8)", columns=MAX_EXAMPLES, fit_columns=False,
                           height="auto", allow_preview=False, interactive=False, buttons=[], elem_id="examples")
    folder = gr.State()
    inputs, shown = [upload, units, db_min, db_max, band], [sar_image, rgb_image, png, geotiff, note]
    units.change(lambda chosen: gr.Row(visible=chosen != "uint8"), units, db_range, queue=False,
                 api_visibility="private")
    starts = [functools.partial(gr.on, [upload.upload, button.click])]
    if examples:
      starts.append(gallery.select(page.pick, None, [upload, units], queue=False, api_visibility="private").then)
    for start in starts:
      start(page.clear, None, shown, queue=False, api_visibility="private").then(
          page.translate, inputs, [*shown, folder], show_progress_on=rgb_image).then(page.forget, folder)
  return blocks


def serve(translator: Translator, *, host: str | None = "127.0.0.1", port: int | None = None,
          examples: Sequence[pathlib.Path] = (), limits: Limits = Limits(), about: About | None = None) -> None:
  """Builds the page and serves it on host:port until stopped, one translation at a time, without a share link.

  host or port None: Gradio's own choice (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as a Hugging Face
  Space sets them, else 127.0.0.1 and the first free port from 7860). Requests beyond `limits` are refused.
  Prints the page's address once it serves; then one line per refused input.
  """
  blocks = build(translator, examples, limits.max_pixels, about)
  blocks.queue(default_concurrency_limit=1, max_size=limits.max_queue)
  python_logging.getLogger("httpx").setLevel(python_logging.WARNING)  # Gradio's own requests to itself
  blocks.launch(server_name=host, server_port=port, share=False, ssr_mode=False, theme=_THEME, quiet=True,
                prevent_thread_lock=True, max_file_size=limits.max_upload_mb * 2**20,  # Gradio's MB: MiB
                allowed_paths=sorted({str(path.parent) for path in examples}))
  print(f"serving the web demo on {blocks.local_url} (Ctrl-C stops it)", flush=True)
  blocks.block_thread()
