r"""Scans a SEN1-2 folder for what would break or skew training, naming every file at fault.

  python -m sar2optical.data.check --root=/data/v_2 [--image_size=256] [--threads=8]

Reports images without their twin, images that cannot be fully decoded, images of another size
than --image_size (0: any size) or of another mode than 8-bit grey (SAR) / RGB (optical), and the
pairs per class. Exit status: 0 when nothing is wrong, 1 when something is, 2 for a bad --root.
"""

from collections.abc import Iterable
import collections
import concurrent.futures
import dataclasses
import pathlib
import runpy

from PIL import Image

from sar2optical.data import pairs as pairs_lib



_MODES = {"SAR": "L", "optical": "RGB"}


@dataclasses.dataclass(frozen=True)
class Problem:
  """Something wrong with one file or folder: `kind` is unpaired, empty, unreadable, size or mode."""
  path: pathlib.Path
  kind: str
  detail: str


@dataclasses.dataclass(frozen=True)
class Report:
  """What `check_folder` found: pairs per class ("" for a root without class folders) and problems."""
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


def check_folder(root: str | pathlib.Path, *, image_size: int = 256, threads: int = 8) -> Report:
  """Checks every image under `root`; raises DataError only when `root` is not a folder."""
  root = pathlib.Path(root)
  index = pairs_lib.index_folder(root)
  problems = [Problem(sar, "unpaired", f"SAR image without its optical twin {optical}")
              for sar, optical in index.sar_without_optical]
  problems += [Problem(optical, "unpaired", f"optical image without its SAR twin {sar}")
               for optical, sar in index.optical_without_sar]
  problems += [Problem(folder, "empty", "class folder without images in s1/ or s2/") for folder in index.empty_classes]
  images = [(root / pair.s1, "SAR") for pair in index.pairs] + [(root / pair.s2, "optical") for pair in index.pairs]
  images += [(sar, "SAR") for sar, _ in index.sar_without_optical]
  images += [(optical, "optical") for optical, _ in index.optical_without_sar]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    found = pool.map(lambda image: inspect_image(*image, image_size), images)
    problems += [problem for image_problems in found for problem in image_problems]
  counts = collections.Counter(pair.label for pair in index.pairs)
  return Report(dict(sorted(counts.items())), sorted(problems, key=lambda p: (str(p.path), p.kind)))


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
  for problem in report.problems:
    yield f"  {problem.kind:<10}  {problem.path}: {problem.detail}"


if __name__ == "__main__":  # the command lives in sar2optical.commands.check
  runpy.run_module("sar2optical.commands.check", run_name="__main__", alter_sys=True)
