"""train.py → eval.py → predict.py end to end on real SEN1-2 pairs, and their errors, as a user runs them."""

import gzip
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import SEN12_ROOT, requires_sen12
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> pathlib.Path:
  """A workdir after 4 training steps at 64² on the real pairs (checkpoints at steps 2 and 4)."""
  if not SEN12_ROOT.is_dir():
    pytest.skip(f"real SEN1-2 sample not found at {SEN12_ROOT}")
  workdir = tmp_path_factory.mktemp("run")
  result = run("train.py", "--config=configs/quickstart.py", f"--workdir={workdir}",
               f"--config.data.root={SEN12_ROOT}", "--config.model.levels=5", "--config.batch_size=4",
               "--config.num_train_steps=4", "--config.checkpoint_every_steps=2", "--config.log_every_steps=2",
               "--config.sample_every_steps=4")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "step 4/4" in result.stderr
  return workdir


@requires_sen12
def test_train_writes_checkpoints_split_and_logs(trained):
  assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["2", "4"]
  split = json.loads((trained / "split.json").read_text())["data"]
  assert {len(split["train"]), len(split["val"]), len(split["test"])} and sum(map(len, split.values())) == 94
  assert len((trained / "metrics.jsonl").read_text().splitlines()) == 2
  assert json.loads((trained / "config.json").read_text())["model"]["levels"] == 5


@requires_sen12
def test_rerun_resumes_and_says_so(trained):
  result = run("train.py", "--config=configs/quickstart.py", f"--workdir={trained}",
               f"--config.data.root={SEN12_ROOT}", "--config.model.levels=5", "--config.batch_size=4",
               "--config.num_train_steps=4")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Resuming from the checkpoint at step 4" in result.stderr


@requires_sen12
def test_eval_reports_overall_and_per_class(trained, tmp_path):
  output = tmp_path / "metrics.json"
  result = run("eval.py", f"--workdir={trained}", "--split=all", "--steps=all", f"--output_json={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(output.read_text())
  assert [r["step"] for r in report["steps"]] == [2, 4]
  latest = report["steps"][-1]
  assert latest["n"] == 94 and latest["split"] == "all" and latest["mode"] == "eval"
  assert {c: v["n"] for c, v in latest["per_class"].items()} == {"agri": 33, "barrenland": 20, "grassland": 20,
                                                                 "urban": 21}
  assert 5 < latest["overall"]["psnr"]["mean"] < 40 and -1 < latest["overall"]["ssim"]["mean"] <= 1
  assert "overall" in result.stdout and "PSNR" in result.stdout
  per_image = (trained / "eval" / "step_4" / "per_image.csv").read_text().splitlines()
  assert per_image[0] == "s1_path,class,psnr,ssim,mae,rmse" and len(per_image) == 95


@requires_sen12
def test_predict_keeps_names_and_sizes(trained, tmp_path):
  inputs = tmp_path / "inputs"
  (inputs / "nested").mkdir(parents=True)
  source = sorted((SEN12_ROOT / "urban" / "s1").glob("*.png"))[:3]
  for path in source:
    (inputs / path.name).write_bytes(path.read_bytes())
  Image.open(source[0]).resize((100, 70)).save(inputs / "nested" / "odd_size.png")
  (inputs / "broken.png").write_bytes(b"not a png")
  output = tmp_path / "out"
  result = run("predict.py", f"--workdir={trained}", f"--input={inputs}", f"--output={output}")
  assert result.returncode == 1  # one input failed
  assert "broken.png" in result.stderr
  assert "translated 4, skipped 0, failed 1" in result.stdout
  for path in source:
    image = Image.open(output / path.name)
    assert image.size == (256, 256) and image.mode == "RGB"
  odd = Image.open(output / "nested" / "odd_size.png")
  assert odd.size == (100, 70) and np.asarray(odd).std() > 0
  again = run("predict.py", f"--workdir={trained}", f"--input={inputs}/*.png", f"--output={output}")
  assert "skipped 3" in again.stdout


def test_missing_data_root_is_named(tmp_path):
  missing = tmp_path / "no_such_folder"
  result = run("train.py", "--config=configs/quickstart.py", f"--workdir={tmp_path / 'w'}",
               f"--config.data.root={missing}")
  assert result.returncode == 2
  assert str(missing) in result.stderr and "Traceback" not in result.stderr


def test_bad_config_value_is_named(tmp_path):
  result = run("train.py", "--config=configs/quickstart.py", f"--workdir={tmp_path}",
               "--config.model.upsampling=cubic")
  assert result.returncode == 2
  assert "config.model.upsampling" in result.stderr and "Traceback" not in result.stderr
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("script, extra", [("eval.py", []), ("predict.py", ["--input=.", "--output=x"])])
def test_missing_checkpoint_is_named(tmp_path, script, extra):
  result = run(script, f"--workdir={tmp_path}", *extra)
  assert result.returncode == 2
  assert "no checkpoints" in result.stderr and str(tmp_path) in result.stderr


def test_jax_flags_and_a_profiler_trace(demo_root, tmp_path):
  """JAX's own flags are taken (a cache the user names replaces WORKDIR/jax_cache), and a trace of steps 2-3."""
  workdir, cache = tmp_path / "run", tmp_path / "my_cache"
  tiny = ["--config=configs/quickstart.py", f"--config.data.root={demo_root}", "--config.image_size=32",
          "--config.batch_size=2", "--config.model.levels=3", "--config.num_train_steps=3",
          "--config.log_every_steps=3", "--config.sample_every_steps=3", "--config.eval_every_steps=0"]
  result = run("train.py", *tiny, f"--workdir={workdir}", "--config.profile_steps=2",
               "--config.profile_after_steps=1", "--jax_debug_nans", f"--jax_compilation_cache_dir={cache}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert any(cache.iterdir()) and not (workdir / "jax_cache").exists()
  [trace] = (workdir / "tensorboard" / "plugins" / "profile").glob("*/*.trace.json.gz")
  assert list(trace.parent.glob("*.xplane.pb"))
  events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
  steps = sorted({int(event["args"]["step_num"]) for event in events if event.get("name") == "train"})
  assert steps == [2, 3]
  assert "Profiler trace of steps 2-3 written to" in result.stderr

  refused = run("train.py", *tiny, f"--workdir={tmp_path / 'other'}", "--jax_platforms=no_such_platform")
  assert refused.returncode != 0 and "no_such_platform" in refused.stderr
