"""Tests of the synthetic demo set generator."""

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sar2optical.core.errors import ConfigError, DataError
from sar2optical.data import synthetic

_PAIRS = 3
_SIZE = 64
_SCENE = re.compile(r"^(ROIs\d+)_([A-Za-z]+)_s[12]_(\d+)_p(\d+)")


def _generate(root: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """Writes a small demo set to `root` and returns `root`."""
  assert synthetic.generate(root, pairs_per_class=_PAIRS, size=_SIZE, seed=seed) == 4 * _PAIRS
  return root


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
  """One small demo set with seed 0, shared by the read-only tests."""
  return _generate(tmp_path_factory.mktemp("demo"))


def _pairs(root: pathlib.Path, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
  """(SAR, optical) arrays of one class, in file name order."""
  return [(_load(s1), _load(_twin(s1))) for s1 in sorted((root / name / "s1").iterdir())]


def _load(path: pathlib.Path) -> np.ndarray:
  """Pixels of an image file."""
  with Image.open(path) as image:
    return np.asarray(image)


def _twin(s1: pathlib.Path) -> pathlib.Path:
  """The optical twin of a SAR patch."""
  return s1.parent.parent / "s2" / s1.name.replace("_s1_", "_s2_")


def _r2(x: np.ndarray, y: np.ndarray) -> float:
  """R^2 of the least-squares linear fit of y on the columns of x."""
  design = np.c_[x, np.ones(len(x))]
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  return 1 - np.mean((y - design @ coef)**2) / np.var(y)


def _blocks(image: np.ndarray, k: int = 4) -> np.ndarray:
  """Means over k x k blocks, one row per block and one column per channel."""
  a = image.reshape(_SIZE, _SIZE, -1).astype(np.float64)
  return a.reshape(_SIZE // k, k, _SIZE // k, k, -1).mean(axis=(1, 3)).reshape(-1, a.shape[-1])


def test_layout_and_names(demo_set: pathlib.Path) -> None:
  assert sorted(p.name for p in demo_set.iterdir()) == ["README.md", *synthetic.CLASSES]
  scenes = {}
  for name in synthetic.CLASSES:
    s1 = sorted(p.name for p in (demo_set / name / "s1").iterdir())
    s2 = sorted(p.name for p in (demo_set / name / "s2").iterdir())
    assert len(s1) == _PAIRS
    assert s2 == [n.replace("_s1_", "_s2_") for n in s1]
    for n in s1:
      assert re.fullmatch(r"ROIs9000_demo_s1_\d+_p\d+\.png", n)
      match = _SCENE.match(n)
      assert match
      scenes.setdefault(match.group(1, 2, 3), set()).add(name)
  assert all(len(classes) == 1 for classes in scenes.values())


def test_scenes_spread_patches(tmp_path: pathlib.Path) -> None:
  synthetic.generate(tmp_path, pairs_per_class=24, size=32)
  for name in synthetic.CLASSES:
    patches = {}
    for s1 in (tmp_path / name / "s1").iterdir():
      _, _, scene, patch = _SCENE.match(s1.name).groups()
      patches.setdefault(scene, set()).add(int(patch))
    assert len(patches) == 8, name
    assert all(p == {1, 2, 3} for p in patches.values()), name


def test_modes_and_sizes(demo_set: pathlib.Path) -> None:
  for name in synthetic.CLASSES:
    for s1 in (demo_set / name / "s1").iterdir():
      with Image.open(s1) as sar, Image.open(_twin(s1)) as opt:
        assert (sar.format, sar.mode, sar.size) == ("PNG", "L", (_SIZE, _SIZE))
        assert (opt.format, opt.mode, opt.size) == ("PNG", "RGB", (_SIZE, _SIZE))


def test_same_seed_is_identical_other_seed_differs(
    demo_set: pathlib.Path, tmp_path: pathlib.Path) -> None:
  again = _generate(tmp_path / "again")
  other = _generate(tmp_path / "other", seed=1)
  for name in synthetic.CLASSES:
    for (s1, s2), (a1, a2), (o1, o2) in zip(
        _pairs(demo_set, name), _pairs(again, name), _pairs(other, name)):
      np.testing.assert_array_equal(s1, a1)
      np.testing.assert_array_equal(s2, a2)
      assert not np.array_equal(s1, o1)
      assert not np.array_equal(s2, o2)


def test_sar_follows_optical(demo_set: pathlib.Path) -> None:
  means = {}
  for name in synthetic.CLASSES:
    pairs = _pairs(demo_set, name)
    sar = np.concatenate([_blocks(s1)[:, 0] for s1, _ in pairs])
    twin = np.concatenate([_blocks(s2) for _, s2 in pairs])
    other = np.concatenate([_blocks(s2) for _, s2 in pairs[1:] + pairs[:1]])
    # Optical colour predicts the SAR of its own twin, not that of another patch.
    assert _r2(twin, sar) > _r2(other, sar) + 0.05, name
    if name != "urban":
      assert _r2(twin, sar) > 0.5, name
    means[name] = np.mean([s1.mean() for s1, _ in pairs])
  assert means["urban"] > means["agri"] + 10
  assert means["urban"] > means["barrenland"] + 10


def test_readme_says_synthetic(demo_set: pathlib.Path) -> None:
  text = (demo_set / "README.md").read_text()
  assert "SYNTHETIC" in text
  assert "sar2optical.data.synthetic" in text
  assert "seed 0" in text
  assert "mean nothing" in text


def test_refuses_foreign_directory(tmp_path: pathlib.Path) -> None:
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(DataError, match=re.escape(str(tmp_path))):
    synthetic.generate(tmp_path, pairs_per_class=1, size=32)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_refuses_file(tmp_path: pathlib.Path) -> None:
  path = tmp_path / "file"
  path.write_text("")
  with pytest.raises(DataError, match=re.escape(str(path))):
    synthetic.generate(path, pairs_per_class=1, size=32)


def test_overwrites_previous_demo_set(tmp_path: pathlib.Path) -> None:
  _generate(tmp_path)
  assert synthetic.generate(tmp_path, pairs_per_class=1, size=32, seed=2) == 4
  for name in synthetic.CLASSES:
    for sensor in ("s1", "s2"):
      assert len(list((tmp_path / name / sensor).iterdir())) == 1
  assert "seed 2" in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("kwargs", [{"pairs_per_class": 0}, {"size": 8}, {"seed": -1}])
def test_rejects_bad_arguments(tmp_path: pathlib.Path, kwargs: dict[str, int]) -> None:
  with pytest.raises(ConfigError, match=next(iter(kwargs))):
    synthetic.generate(tmp_path / "out", **kwargs)
  assert not (tmp_path / "out").exists()


def test_command_line(tmp_path: pathlib.Path) -> None:
  out = tmp_path / "cli"
  done = subprocess.run(
      [sys.executable, "-m", "sar2optical.commands.demo_data", f"--output={out}", "--pairs_per_class=1",
       "--size=32"],
      capture_output=True, text=True, check=True)
  assert "Wrote 4 synthetic SAR/optical pairs" in done.stdout
  assert str(out) in done.stdout
  assert len(list(out.glob("*/s1/*.png"))) == 4
