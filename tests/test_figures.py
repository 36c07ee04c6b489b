"""docs/figures.py, the README's results figure: the API's translations of a run's test pairs, scored as drawn."""

import collections
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
from conftest import REPO, make_workdir
from PIL import Image

import sar2optical
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import resolve, sources
from sar2optical.training import log

ROWS = 3


def figures(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "docs/figures.py", *args], cwd=REPO, capture_output=True, text=True,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)


def figures_module():
  spec = importlib.util.spec_from_file_location("figures", REPO / "docs" / "figures.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def psnr(image: np.ndarray, target: np.ndarray) -> float:
  mse = np.mean((image.astype(np.float64) - target.astype(np.float64)) ** 2)
  return float(10 * np.log10(255.0**2 / mse))


def test_the_figure_shows_each_models_api_translation_of_the_runs_test_pairs(tiny_workdir, demo_root, tmp_path):
  other = make_workdir(tmp_path / "other")
  output = tmp_path / "figure" / "results.png"
  result = figures(f"--model=trained={tiny_workdir}", f"--model=other={other}", f"--rows={ROWS}",
                   f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]

  sidecar = json.loads(output.with_suffix(".json").read_text())
  assert [(m["label"], m["workdir"], m["step"]) for m in sidecar["models"]] == [
      ("trained", str(tiny_workdir), 2), ("other", str(other), 5)]
  assert sidecar["models"][0]["config"]["image_size"] == 32
  test_split = json.loads((tiny_workdir / "split.json").read_text())["data"]["test"]
  shown = [row["sar"] for row in sidecar["rows"]]
  assert len(shown) == ROWS and set(shown) <= set(test_split)
  classes_in_test = {name.split("/")[0] for name in test_split}
  assert len({row["class"] for row in sidecar["rows"]}) == min(ROWS, len(classes_in_test))

  twins = {pair.s1: pair.s2 for pair in pairs_lib.find_pairs(demo_root)}
  for label, workdir in (("trained", tiny_workdir), ("other", other)):
    translator = sar2optical.load(workdir)
    for row in sidecar["rows"]:
      sar = np.asarray(Image.open(demo_root / row["sar"]))
      target = np.asarray(Image.open(demo_root / twins[row["sar"]]).convert("RGB"))
      assert abs(row["psnr"][label] - psnr(translator.translate(sar), target)) < 1e-3, (label, row)

  tile = -(-log.GRID_MIN_TILE // 32) * 32  # the 32² pairs, enlarged as pair_grid enlarges them
  title_band = log.pair_grid([[np.zeros((32, 32, 3), np.uint8)]]).shape[0] - tile
  assert Image.open(output).size == (4 * tile, ROWS * tile + title_band)  # SAR | trained | other | target


def test_a_workdir_without_checkpoints_is_one_error_line_naming_it(tmp_path):
  empty = tmp_path / "never_trained"
  empty.mkdir()
  result = figures(f"--model=new={empty}", f"--output={tmp_path / 'figure.png'}")
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert result.returncode == 2, result.stderr[-3000:]
  assert len(errors) == 1 and str(empty) in errors[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "figure.png").exists()


def test_the_rows_go_to_each_class_in_turn_the_same_every_time(demo_root):
  source = resolve.in_name_order(sources.FolderSource(demo_root, pairs_lib.find_pairs(demo_root)))  # 4 classes
  choose_rows = figures_module().choose_rows
  def classes(rows: int) -> collections.Counter:
    return collections.Counter(source.name_and_label(index)[1] for index in choose_rows(source, rows))
  assert classes(4) == collections.Counter({"agri": 1, "barrenland": 1, "grassland": 1, "urban": 1})
  assert sorted(classes(6).values()) == [1, 1, 2, 2]
  assert choose_rows(source, 6) == choose_rows(source, 6)
  assert len(choose_rows(source, 100)) == len(source)
