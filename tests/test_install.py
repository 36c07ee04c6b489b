"""The package installed from a wheel works outside the clone: packaged configs and console scripts."""

import os
import pathlib
import shutil
import subprocess
import sys

from conftest import REPO


def run(args: list[str], cwd: pathlib.Path, env: dict[str, str]) -> str:
  result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  return result.stdout + result.stderr


def test_a_wheel_trains_and_evaluates_from_another_folder(demo_root, tmp_path):
  """Build a wheel, install it (without the dependencies, which this environment has) into a folder of its
  own, and run the console scripts from a third folder with the packaged quickstart config by name."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
  shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "_build", "runs", "demo_data", "*.egg-info",
                                                              "__pycache__", ".pytest_cache"))
  run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(source)], tmp_path, env)
  (wheel,) = (tmp_path / "wheel").glob("sar2optical-*.whl")
  site = tmp_path / "site"
  run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], tmp_path, env)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {**env, "PYTHONPATH": str(site)}  # the installed copy, not the checkout
  where = run([sys.executable, "-c", "import sar2optical; print(sar2optical.__file__)"], elsewhere, env)
  assert where.strip().startswith(str(site)), where
  run([str(site / "bin" / "sar2optical-train"), "--config=quickstart", "--workdir=run", f"--config.data.root={demo_root}",
       "--config.image_size=32", "--config.batch_size=2", "--config.model.levels=3", "--config.num_train_steps=2",
       "--config.eval_every_steps=0"], elsewhere, env)
  assert (elsewhere / "run" / "checkpoints" / "2").is_dir()
  printed = run([str(site / "bin" / "sar2optical-eval"), "--workdir=run", "--split=all"], elsewhere, env)
  assert "overall" in printed and (elsewhere / "run" / "eval" / "step_2" / "metrics.json").is_file()
