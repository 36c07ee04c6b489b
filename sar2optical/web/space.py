"""A Hugging Face Space of the web demo (`sar2optical-demo --write_space`): the page on a model exported as
StableHLO, with what the page says of it, the package that wrote it and its requirements."""

import importlib.metadata
import pathlib
import shutil

import sar2optical
from sar2optical.checkpoints import manager
from sar2optical.core.errors import ConfigError
from sar2optical.inference.translator import Translator
from sar2optical.interop import stablehlo
from sar2optical.web import page

SPACE_MODEL = "model/generator.jax"
SPACE_ABOUT = "model/about.json"  # what the page says of the model: its artifact does not record the data

_SPACE_APP = f'''"""A Hugging Face Space: the sar2optical web demo on the exported generator {SPACE_MODEL}.

Written by `sar2optical-demo --write_space`; sar2optical/ beside it is the package that wrote it.
"""

import pathlib

import sar2optical
from sar2optical.web import page

if __name__ == "__main__":
  here = pathlib.Path(__file__).parent
  page.serve(sar2optical.load(here / "{SPACE_MODEL}"), host=None, port=None,
             about=page.About.read(here / "{SPACE_ABOUT}"))
'''


def _space_readme(about: page.About) -> str:
  return f"""---
title: sar2optical
emoji: 🛰️
colorFrom: blue
colorTo: green
sdk: gradio
sdk_version: {importlib.metadata.version("gradio")}
app_file: app.py
pinned: false
license: mit
---

# sar2optical: Sentinel-1 SAR → Sentinel-2-like RGB

A Pix2Pix generator trained with sar2optical (Pix2Pix in JAX/Flax), exported as StableHLO
({SPACE_MODEL}). Upload 8-bit SEN1-2 SAR or a calibrated σ⁰ GeoTIFF; download the translation as PNG
or as a GeoTIFF with the input's georeferencing.

{about.markdown()}
"""


def write_space(model: str | pathlib.Path, folder: str | pathlib.Path, step: str = "latest") -> pathlib.Path:
  """Writes a Hugging Face Space to the new or empty `folder`: app.py, README.md (the Space's YAML header),
  requirements.txt (sar2optical's), the package sar2optical/, the model as an exported artifact and what the
  page says of it (`page.About` of `model`, SPACE_ABOUT).

  `model` is a workdir (its checkpoint at `step`), a step directory or an exported artifact (copied).
  The artifact holds only the generator, in eval mode, for CPU, CUDA and TPU. Returns app.py's path.
  """
  model, folder = pathlib.Path(model).expanduser(), pathlib.Path(folder).expanduser()
  if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
    raise ConfigError(f"--write_space: {folder} exists and is not an empty folder")
  try:
    requirements = [line for line in importlib.metadata.requires("sar2optical") or [] if ";" not in line]
  except importlib.metadata.PackageNotFoundError:
    raise ConfigError("--write_space: sar2optical is not installed, so its requirements are unknown: "
                      "pip install -e '.[demo]' in the clone") from None
  artifact = folder / SPACE_MODEL
  translator = _space_model(model, artifact, step)
  about = page.About.of(model, translator)
  about.write(folder / SPACE_ABOUT)
  shutil.copytree(pathlib.Path(sar2optical.__file__).parent, folder / "sar2optical",
                  ignore=shutil.ignore_patterns("__pycache__"))
  (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
  (folder / "README.md").write_text(_space_readme(about))
  (folder / "app.py").write_text(_SPACE_APP)
  return folder / "app.py"


def _space_model(model: pathlib.Path, artifact: pathlib.Path, step: str) -> Translator:
  """The generator of `model` exported to `artifact` (a workdir or step directory), or the artifact copied."""
  if model.is_file():
    translator = sar2optical.load(model)  # an artifact of this version, or CheckpointError naming it
    artifact.parent.mkdir(parents=True)
    shutil.copy(model, artifact)
    shutil.copy(f"{model}.json", f"{artifact}.json")
    return translator
  if manager.is_step_dir(model):
    model, step = model.resolve().parents[1], model.name
  stablehlo.export_workdir(model, artifact, step)
  return sar2optical.load(artifact)
