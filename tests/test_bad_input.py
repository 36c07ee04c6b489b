"""The bad-input catalogue: each mistake a user can make with train, eval and predict gives one line that
names the file or field, a non-zero exit, and leaves everything written before as it was.

Cases run in-process through the functions the entry scripts call (a Sar2OpticalError is what
`cli.run` turns into `error: <message>` and exit status 2, shown by the subprocess cases at the end).
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from conftest import REPO, file_digests, tiny_config
from PIL import Image

import sar2optical
from sar2optical.core.errors import Sar2OpticalError
from sar2optical.data import synthetic
from sar2optical.evaluation import workflow
from sar2optical.training import loop

SAR, OPTICAL = "agri/s1/ROIs1970_fall_s1_13_p{}.png", "agri/s2/ROIs1970_fall_s2_13_p{}.png"


def write_png(path: pathlib.Path, array: np.ndarray, mode: str | None = None) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array, mode).save(path)


def two_pairs(root: pathlib.Path) -> pathlib.Path:
  """A data root of two 32² pairs, and split.json putting both in train: the first batch reads both."""
  rng = np.random.default_rng(0)
  for patch in (1, 2):
    write_png(root / SAR.format(patch), rng.integers(0, 256, (32, 32), dtype=np.uint8))
    write_png(root / OPTICAL.format(patch), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
  split = {"data": {"train": [SAR.format(1), SAR.format(2)], "val": [], "test": []}}
  (root / "split.json").write_text(json.dumps(split))
  return root


@dataclasses.dataclass
class Case:
  """`setup(tmp, ctx)` breaks something under `tmp` and returns the call that must fail naming `names(tmp)`."""
  name: str
  setup: Callable[[pathlib.Path, dict], Callable[[], object]]
  names: Callable[[pathlib.Path], str]


def half_extracted(root: pathlib.Path) -> pathlib.Path:
  """SEN1-2's season folders with one scene's optical folder missing, as a cut-short tarball leaves them."""
  synthetic.generate(root, pairs_per_class=1, size=32, layout="original")
  shutil.rmtree(root / "ROIs9000_spring" / "s2_1")
  return root


def train_on(root: pathlib.Path, workdir: pathlib.Path, **overrides) -> Callable[[], object]:
  config = tiny_config(root, num_train_steps=1, eval_every_steps=0, **{"data.split_file": str(root / "split.json"),
                                                                       **overrides})
  return lambda: loop.train(config, workdir)


def broken_data(mutate: Callable[[pathlib.Path], None]) -> Callable[[pathlib.Path, dict], Callable[[], object]]:
  def setup(tmp: pathlib.Path, ctx: dict) -> Callable[[], object]:
    mutate(two_pairs(tmp / "data"))
    return train_on(tmp / "data", tmp / "run")
  return setup


def copied_run(tmp: pathlib.Path, ctx: dict) -> pathlib.Path:
  shutil.copytree(ctx["workdir"], tmp / "run")
  return tmp / "run"


def corrupt_checkpoint(tmp: pathlib.Path, ctx: dict) -> pathlib.Path:
  """The latest checkpoint's array data cut in half, as a partial copy leaves it."""
  workdir = copied_run(tmp, ctx)
  for path in (workdir / "checkpoints" / "2" / "state").rglob("*"):
    if path.is_file() and path.parent.name == "d":
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  return workdir


def predict(workdir: pathlib.Path, inputs: str, output: pathlib.Path) -> Callable[[], object]:
  return lambda: sar2optical.load(workdir).translate_files(inputs, output)


def a_file(tmp: pathlib.Path) -> pathlib.Path:
  """A plain file, so that any folder 'inside' it cannot be created."""
  (tmp / "a_file").write_text("not a folder\n")
  return tmp / "a_file"


CASES = [
    # train: data
    Case("missing data root", lambda tmp, ctx: train_on(tmp / "nowhere", tmp / "run", **{"data.split_file": ""}),
         lambda tmp: str(tmp / "nowhere")),
    Case("empty class folder", broken_data(lambda root: [(root / "urban" / sub).mkdir(parents=True)
                                                         for sub in ("s1", "s2")]),
         lambda tmp: str(tmp / "data" / "urban")),
    Case("scene folder without its twin", lambda tmp, ctx: train_on(half_extracted(tmp / "data"), tmp / "run",
                                                                      **{"data.split_file": ""}),
         lambda tmp: f"{tmp}/data/ROIs9000_spring/s1_1 has no twin folder {tmp}/data/ROIs9000_spring/s2_1"),
    Case("Kaggle and original layouts mixed", broken_data(lambda root: [
        write_png(root / "ROIs1158_spring/s1_1/ROIs1158_spring_s1_1_p1.png", np.zeros((32, 32), np.uint8)),
        write_png(root / "ROIs1158_spring/s2_1/ROIs1158_spring_s2_1_p1.png", np.zeros((32, 32, 3), np.uint8))]),
         lambda tmp: f"class folders such as {tmp}/data/agri and SEN1-2 season folders such as "
                     f"{tmp}/data/ROIs1158_spring"),
    Case("unpaired file", broken_data(lambda root: (root / OPTICAL.format(2)).unlink()),
         lambda tmp: str(tmp / "data" / OPTICAL.format(2))),
    Case("zero-byte PNG", broken_data(lambda root: (root / SAR.format(2)).write_bytes(b"")),
         lambda tmp: str(tmp / "data" / SAR.format(2))),
    Case("truncated PNG", broken_data(lambda root: (root / OPTICAL.format(1)).write_bytes(
        (root / OPTICAL.format(1)).read_bytes()[:200])), lambda tmp: str(tmp / "data" / OPTICAL.format(1))),
    Case("pair of two sizes", broken_data(lambda root: write_png(root / OPTICAL.format(2),
                                                                 np.zeros((48, 48, 3), np.uint8))),
         lambda tmp: str(tmp / "data" / OPTICAL.format(2))),
    Case("non-square image", broken_data(lambda root: [
        write_png(root / SAR.format(1), np.zeros((32, 40), np.uint8)),
        write_png(root / OPTICAL.format(1), np.zeros((32, 40, 3), np.uint8))]),
         lambda tmp: str(tmp / "data" / SAR.format(1))),
    Case("RGBA optical image", broken_data(lambda root: write_png(root / OPTICAL.format(2),
                                                                  np.zeros((32, 32, 4), np.uint8))),
         lambda tmp: str(tmp / "data" / OPTICAL.format(2))),
    Case("16-bit SAR image", broken_data(lambda root: write_png(root / SAR.format(1),
                                                                np.full((32, 32), 4000, np.uint16))),
         lambda tmp: str(tmp / "data" / SAR.format(1))),
    Case("non-image named .png", broken_data(lambda root: (root / SAR.format(1)).write_text("<html>404</html>")),
         lambda tmp: str(tmp / "data" / SAR.format(1))),
    Case("split naming missing files", broken_data(lambda root: (root / "split.json").write_text(json.dumps(
        {"data": {"train": [SAR.format(1), "agri/s1/ROIs1970_fall_s1_13_p99.png"], "val": [], "test": []}}))),
         lambda tmp: "ROIs1970_fall_s1_13_p99.png"),
    Case("malformed split JSON", broken_data(lambda root: (root / "split.json").write_text('{"data": {"train": [')),
         lambda tmp: str(tmp / "data" / "split.json")),
    # train: config and paths
    Case("negative learning rate", lambda tmp, ctx: train_on(two_pairs(tmp / "data"), tmp / "run",
                                                             **{"optimizer.learning_rate": -2e-4}),
         lambda tmp: "config.optimizer.learning_rate"),
    Case("image size the levels cannot take", lambda tmp, ctx: train_on(two_pairs(tmp / "data"), tmp / "run",
                                                                        image_size=36),
         lambda tmp: "config.image_size"),
    Case("unwritable workdir", lambda tmp, ctx: train_on(two_pairs(tmp / "data"), a_file(tmp) / "run"),
         lambda tmp: str(tmp / "a_file" / "run")),
    Case("workdir of an unsupported scheme", lambda tmp, ctx: train_on(two_pairs(tmp / "data"), "s3://bucket/run"),
         lambda tmp: "the workdir s3://bucket/run: s3:// paths are not supported"),
    Case("data root of an unsupported scheme", lambda tmp, ctx: train_on(two_pairs(tmp / "data"), tmp / "run",
                                                                          **{"data.root": "s3://bucket/sen1-2"}),
         lambda tmp: "config.data.root: s3://bucket/sen1-2: s3:// paths are not supported"),
    # eval
    Case("eval: workdir with no checkpoint", lambda tmp, ctx: lambda: workflow.evaluate(tmp / "empty", split="all"),
         lambda tmp: str(tmp / "empty")),
    Case("eval: workdir of an unsupported scheme", lambda tmp, ctx: lambda: workflow.evaluate("s3://bucket/run",
                                                                                               split="all"),
         lambda tmp: "s3://bucket/run: s3:// paths are not supported"),
    Case("eval: corrupt checkpoint", lambda tmp, ctx: lambda: workflow.evaluate(
        corrupt_checkpoint(tmp, ctx), split="all", output_dir=str(tmp / "out")),
         lambda tmp: str(tmp / "run" / "checkpoints" / "2")),
    Case("eval: unwritable output folder", lambda tmp, ctx: lambda: workflow.evaluate(
        copied_run(tmp, ctx), split="all", output_dir=str(a_file(tmp) / "out")),
         lambda tmp: str(tmp / "a_file" / "out")),
    # predict
    Case("predict: missing input", lambda tmp, ctx: predict(copied_run(tmp, ctx), str(tmp / "none.png"), tmp / "out"),
         lambda tmp: str(tmp / "none.png")),
    Case("predict: model of an unsupported scheme", lambda tmp, ctx: lambda: sar2optical.load("s3://bucket/run"),
         lambda tmp: "the model s3://bucket/run: s3:// paths are not supported"),
    Case("predict: input of an unsupported scheme", lambda tmp, ctx: predict(copied_run(tmp, ctx),
                                                                              "ftp://host/scene.tif", tmp / "out"),
         lambda tmp: "--input ftp://host/scene.tif: ftp:// rasters are not read here"),
    Case("predict: corrupt checkpoint", lambda tmp, ctx: predict(corrupt_checkpoint(tmp, ctx), str(ctx["sar"]),
                                                                  tmp / "out"),
         lambda tmp: str(tmp / "run" / "checkpoints" / "2")),
    Case("predict: unwritable output folder", lambda tmp, ctx: predict(copied_run(tmp, ctx), str(ctx["sar"]),
                                                                        a_file(tmp) / "out"),
         lambda tmp: str(tmp / "a_file" / "out")),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_named_in_one_line_and_nothing_is_lost(case, tmp_path, tiny_workdir, demo_root):
  ctx = {"workdir": tiny_workdir, "sar": next((demo_root / "agri" / "s1").iterdir())}
  call = case.setup(tmp_path, ctx)
  before = file_digests(tmp_path)
  with pytest.raises(Sar2OpticalError) as error:
    call()
  message = str(error.value)
  assert case.names(tmp_path) in message and "\n" not in message, message
  after = file_digests(tmp_path)
  assert {path: after.get(path) for path in before} == before  # new files may appear; none changed or went


def run_script(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **env})


def test_batch_not_divisible_by_the_devices_exits_2(tmp_path):
  result = run_script("train.py", "--config=configs/quickstart.py", f"--workdir={tmp_path / 'run'}",
                      f"--config.data.root={two_pairs(tmp_path / 'data')}", "--config.batch_size=3",
                      XLA_FLAGS="--xla_force_host_platform_device_count=2")
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.batch_size: 3 is not divisible by the 2 devices the batch is sharded over")


def test_a_workdir_of_an_unsupported_scheme_exits_2_and_makes_no_local_folder(tmp_path):
  """`s3://…` would otherwise become a local folder `s3:` under the current one."""
  result = subprocess.run([sys.executable, str(REPO / "train.py"), "--config=configs/quickstart.py",
                           "--workdir=s3://bucket/run", f"--config.data.root={two_pairs(tmp_path / 'data')}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == ("error: --workdir s3://bucket/run: s3:// paths are not supported; "
                                                    "use gs://, a local path, or a bucket mounted as a folder")
  assert not (REPO / "s3:").exists()


def test_a_corrupt_checkpoint_exits_2_from_eval(tiny_workdir, tmp_path):
  workdir = corrupt_checkpoint(tmp_path, {"workdir": tiny_workdir})
  result = run_script("eval.py", f"--workdir={workdir}", "--split=all")
  assert result.returncode == 2, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and str(workdir / "checkpoints" / "2") in last and "Traceback" not in result.stderr


@pytest.mark.parametrize("case", ["missing", "wrong_sha256", "wrong_keys", "no_lpips_backbone"])
def test_bad_feature_metric_weights_exit_2_and_write_nothing(case, tiny_workdir, tmp_path, random_feature_weights):
  """A missing file (where it is published, its SHA-256), another file's digest, or another network's
  names: one line naming the file from eval.py, exit 2, before anything is written."""
  (inception, inception_sha), (alexnet, alexnet_sha) = random_feature_weights.values()
  missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
  args, names = {
      "missing": ([f"--fid_weights={missing}"], [str(missing), "https://github.com/mseitzer/pytorch-fid/releases",
                                                  "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"]),
      "wrong_sha256": ([f"--fid_weights={inception}"], [str(inception), inception_sha, "expected SHA-256 6726825d0af5"]),
      "wrong_keys": ([f"--fid_weights={alexnet}", f"--fid_weights_sha256={alexnet_sha}"],
                     [str(alexnet), "not pytorch-fid's FID Inception-v3", "Conv2d_1a_3x3.conv.weight"]),
      "no_lpips_backbone": (["--lpips"], ["SAR2OPTICAL_LPIPS_BACKBONE_WEIGHTS", "alexnet-owt-7be5be79.pth",
                                          "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"]),
  }[case]
  if case != "no_lpips_backbone":
    args.insert(0, "--fid")
  before = file_digests(tiny_workdir)
  environment = {k: v for k, v in os.environ.items() if not k.startswith("SAR2OPTICAL_")}
  result = subprocess.run([sys.executable, "eval.py", f"--workdir={tiny_workdir}", "--split=all",
                           f"--output_dir={tmp_path / 'out'}", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**environment, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "Traceback" not in result.stderr
  assert all(name in last for name in names), last
  assert not (tmp_path / "out").exists() and file_digests(tiny_workdir) == before
