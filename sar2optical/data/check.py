r"""Scans a SAR/optical data root for what would break or skew training, naming every file at fault.

  python -m sar2optical.commands.check --root=/data/v_2 [--image_size=256] [--threads=8] [--workers=1]
      [--scene_pattern=REGEX]

Reports a root in no known layout (or empty, or mixing layouts), scene folders without their twin
folder, folders without images, images without their twin, images that cannot be fully decoded,
images of another size than --image_size (0: any size) or of another mode than 8-bit grey (SAR) /
RGB (optical), and the pairs per class (per season in SEN1-2's original layout). Problems are listed
per class or season folder and scene. --workers processes decode at once, each with --threads
threads. Exit status: 0 when nothing is wrong, 1 when something is, 2 for a bad --root.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import multiprocessing
import pathlib
import runpy
from collections.abc import Iterable, Sequence

from PIL import Image

from sar2optical.data import pairs as pairs_lib

_MODES = {"SAR": "L", "optical": "RGB"}
_CHUNK = 512  # images a worker process decodes per task


@dataclasses.dataclass(frozen=True)
class Problem:
  """Something wrong with a file, a folder or the root: `kind` is layout, unpaired, empty, unreadable, size or mode."""
  path: pathlib.Path
  kind: str
  detail: str


@dataclasses.dataclass(frozen=True)
class Report:
  """What `check_folder` found: pairs per class or season ("" for a root without class folders) and problems."""
  pairs_per_class: dict[str, int]
  problems: list[Problem]


def inspect_image(path: pathlib.Path, role: str, image_size: int) -> list[Problem]:
  """Decodes `path` fully; returns its problems as the `role` ("SAR" or "optical") image."""
  try:
    with Image.open(path) as image:
      image.load()
      mode, (width, height) = image.mode, image.size
  except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
    return [Problem(path, "unreadable", str(error))]
  problems = []
  if image_size and (width, height) != (image_size, image_size):
    problems.append(Problem(path, "size", f"{width}x{height}, expected {image_size}x{image_size}"))
  if mode != _MODES[role]:
    problems.append(Problem(path, "mode", f"{mode}, expected {_MODES[role]} ({role})"))
  return problems


def _inspect_all(images: Sequence[tuple[pathlib.Path, str]], image_size: int, threads: int) -> list[Problem]:
  """The problems of `images` ((path, role) each), decoded by `threads` threads."""
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    found = pool.map(lambda image: inspect_image(*image, image_size), images)
    return [problem for image_problems in found for problem in image_problems]


def _inspect_in_processes(images: Sequence[tuple[pathlib.Path, str]], image_size: int, threads: int,
                          workers: int) -> list[Problem]:
  """`_inspect_all` over chunks of `images` in `workers` processes (in this one when workers is 1)."""
  if workers <= 1:
    return _inspect_all(images, image_size, threads)
  chunks = [images[start:start + _CHUNK] for start in range(0, len(images), _CHUNK)]
  # Spawned, not forked: a fork of a process that has loaded JAX (tests, notebooks) can deadlock.
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
    found = pool.map(_inspect_all, chunks, itertools.repeat(image_size), itertools.repeat(threads))
    return [problem for chunk_problems in found for problem in chunk_problems]


def check_folder(root: str | pathlib.Path, *, image_size: int = 256, threads: int = 8, workers: int = 1,
                 scene_pattern: str = "") -> Report:
  """Checks every image under `root`; raises DataError only when `root` is not a folder (or the pattern is bad)."""
  root = pathlib.Path(root)
  index = pairs_lib.index_folder(root, scene_pattern)
  layout = pairs_lib.layout_problem(index, root)
  problems = [Problem(root, "layout", layout)] if layout else []
  problems += [Problem(lone, "unpaired", f"scene folder without its twin folder {missing}")
               for lone, missing in index.lone_folders]
  problems += [Problem(sar, "unpaired", f"SAR image without its optical twin {optical}")
               for sar, optical in index.sar_without_optical]
  problems += [Problem(optical, "unpaired", f"optical image without its SAR twin {sar}")
               for optical, sar in index.optical_without_sar]
  problems += [Problem(folders.where, "empty", f"no images in {folders.sar.name}/ or {folders.optical.name}/")
               for folders in index.empty_folders]
  images = [(root / pair.s1, "SAR") for pair in index.pairs] + [(root / pair.s2, "optical") for pair in index.pairs]
  images += [(sar, "SAR") for sar, _ in index.sar_without_optical]
  images += [(optical, "optical") for optical, _ in index.optical_without_sar]
  problems += _inspect_in_processes(images, image_size, threads, workers)
  counts = collections.Counter(pair.label for pair in index.pairs)
  problems.sort(key=lambda problem: (group_of(problem.path, root), str(problem.path), problem.kind))
  return Report(dict(sorted(counts.items())), problems)


def group_of(path: pathlib.Path, root: pathlib.Path) -> str:
  """Where a problem lies: "<class or season folder> <scene id>", as far as `path` tells ("" for the root)."""
  parts = path.relative_to(root).parts
  top = parts[0] if parts and parts[0] not in pairs_lib.SIDE_FOLDERS else ""
  scene = (pairs_lib.scene_folder_scene(top, parts[1]) if len(parts) == 2 else None) or pairs_lib.scene_of(path.name)
  return " ".join(part for part in (top, scene) if part)


def format_report(report: Report, root: str | pathlib.Path) -> Iterable[str]:
  """The lines that `check` prints."""
  total = sum(report.pairs_per_class.values())
  per_class = ", ".join(f"{label or '(no class folder)'} {n}" for label, n in report.pairs_per_class.items())
  yield f"{root}: {total} pairs ({per_class or 'none'})"
  if not report.problems:
    yield "no problems found"
    return
  kinds = collections.Counter(problem.kind for problem in report.problems)
  yield f"{len(report.problems)} problems: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
  root = pathlib.Path(root)
  for group, problems in itertools.groupby(report.problems, key=lambda problem: group_of(problem.path, root)):
    problems = list(problems)
    yield f"{group or root}: {len(problems)} problem{'s' * (len(problems) > 1)}"
    for problem in problems:
      yield f"  {problem.kind:<10}  {problem.path}: {problem.detail}"


if __name__ == "__main__":  # the command lives in sar2optical.commands.check
  runpy.run_module("sar2optical.commands.check", run_name="__main__", alter_sys=True)
