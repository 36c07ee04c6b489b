"""The packaged configs, `get_config()` each: `pix2pix` (the original's setup; `pix2pix:paper` adds the
paper's augmentation, `pix2pix:few_scenes` the few-scene recipe) and `quickstart` (a short
CPU run). The repository's `configs/*.py` are their documented, runnable paths; an installed toolkit
also takes them by name: `--config=quickstart`.
"""

import pathlib
from collections.abc import Sequence

NAMES = ("pix2pix", "quickstart")
_FOLDER = pathlib.Path(__file__).resolve().parent


def with_packaged_paths(argv: Sequence[str]) -> list[str]:
  """`argv` with `--config=NAME[:VARIANT]` → the packaged file's path, for a NAME that is no file here."""
  resolved = []
  for arg in argv:
    flag, _, value = arg.partition("=")
    name, colon, variant = value.partition(":")
    if flag == "--config" and name in NAMES and not pathlib.Path(name).exists():
      arg = f"--config={_FOLDER / name}.py{colon}{variant}"
    resolved.append(arg)
  return resolved
