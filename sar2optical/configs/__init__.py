"""The packaged configs, `get_config()` each: `pix2pix` (the original's setup; `pix2pix:paper` adds the
paper's augmentation, `pix2pix:few_scenes` and `pix2pix:accurate` the few-scene recipes, realism or
accuracy first) and `quickstart` (a short
CPU run). The repository's `configs/*.py` are their documented, runnable paths; an installed toolkit
also takes them by name: `--config=quickstart`.
"""

import pathlib
from collections.abc import Sequence

NAMES = ("pix2pix", "quickstart")
#: What --config takes by name: each packaged config, with its variants.
CHOICES = ("pix2pix", "pix2pix:paper", "pix2pix:few_scenes", "pix2pix:accurate", "quickstart")
_FOLDER = pathlib.Path(__file__).resolve().parent


def _packaged_path(value: str) -> str:
  """`NAME[:VARIANT]` → the packaged file's path `.../NAME.py[:VARIANT]`, for a NAME that is no file here; other
  values as they are."""
  name, colon, variant = value.partition(":")
  return f"{_FOLDER / name}.py{colon}{variant}" if name in NAMES and not pathlib.Path(name).exists() else value


def with_packaged_paths(argv: Sequence[str]) -> list[str]:
  """`argv` with `--config=NAME[:VARIANT]` (or `--config NAME[:VARIANT]`) → the packaged file's path, for a NAME
  that is no file here."""
  resolved: list[str] = []
  for arg in argv:
    flag, equals, value = arg.partition("=")
    if "--" in resolved[1:]:  # arguments, not flags
      pass
    elif resolved[1:] and resolved[-1] == "--config":
      arg = _packaged_path(arg)
    elif flag == "--config" and equals:
      arg = f"--config={_packaged_path(value)}"
    resolved.append(arg)
  return resolved
