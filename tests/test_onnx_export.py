"""The generator exported as ONNX (built from its Flax variables), run by onnxruntime against our generator."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SEN12_ROOT, load_pair, make_workdir, requires_sen12, spread_generator, tiny_config

import sar2optical
import sar2optical.interop
from sar2optical.commands import export as export_command
from sar2optical.configs import fields
from sar2optical.core.errors import CheckpointError, ConfigError, DataError
from sar2optical.data.pairs import find_pairs
from sar2optical.inference.restore import load_generator

onnx = pytest.importorskip("onnx", reason="onnx (test dependency; the `onnx` extra) is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (test dependency) is not installed")
from sar2optical.interop import onnx_graph

TOLERANCE = 1e-4  # max |ONNX − ours| in the model range [-1, 1]


def run_onnx(model, sar: np.ndarray) -> np.ndarray:
  """uint8 SAR (B, S, S, C) through the ONNX model as the original's onnx_inference.py feeds it; NHWC out.

  Its preprocessing: float32 / 255, then (x − 0.5) / 0.5 (ToTensor + Normalize), in NCHW.
  """
  session = ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString(),
                                 providers=["CPUExecutionProvider"])
  x = ((sar.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2)
  (y,) = session.run([onnx_graph.OUTPUT], {onnx_graph.INPUT: x})
  return y.transpose(0, 2, 3, 1)


def assert_equal_to_ours(generator, model, sar: np.ndarray) -> float:
  """Runs batches of 1 and all of `sar` through the one ONNX model; returns the largest difference to ours."""
  ours = np.asarray(generator(sar))
  assert np.mean(np.abs(ours) > 0.99) < 0.1  # outputs spread, not saturated: the comparison means something
  differences = []
  for batch in (1, len(sar)):
    theirs = run_onnx(model, sar[:batch])
    assert theirs.shape == (batch, *sar.shape[1:3], 3) and theirs.dtype == np.float32
    differences.append(float(np.abs(theirs - ours[:batch]).max()))
  print(f"max |ONNX - ours| = {max(differences):.2e}")
  assert max(differences) <= TOLERANCE, differences
  return max(differences)


@pytest.mark.parametrize("upsampling", ["none", "nearest", "bilinear"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_onnx_equals_our_generator(in_channels, upsampling):
  generator = spread_generator(tiny_config("unused", **{"model.in_channels": in_channels,
                                                        "model.upsampling": upsampling}))
  model = onnx_graph.onnx_model(generator)  # checked with full_check=True inside
  assert {node.op_type for node in model.graph.node}.isdisjoint({"Dropout"})
  sar = np.random.default_rng(in_channels).integers(0, 256, (3, 32, 32, in_channels), dtype=np.uint8)
  assert_equal_to_ours(generator, model, sar)


@requires_sen12
def test_onnx_at_the_default_size_on_real_tiles():
  config = fields.default_config()  # 8 levels at 256², 1-channel SAR, ConvTranspose
  generator = spread_generator(config)
  pairs = find_pairs(SEN12_ROOT)
  sar = np.stack([load_pair(SEN12_ROOT, pair, config.image_size, 1)["sar"] for pair in (pairs[0], pairs[-1])])
  assert_equal_to_ours(generator, onnx_graph.onnx_model(generator), sar)


def test_cli_writes_the_model_and_its_convention(tmp_path):
  workdir = make_workdir(tmp_path / "run", in_channels=3, upsampling="nearest")
  output = tmp_path / "out" / "generator.onnx"
  result = subprocess.run([sys.executable, "-m", "sar2optical.commands.export", "--format=onnx", f"--workdir={workdir}",
                           f"--output={output}"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  onnx.checker.check_model(str(output), full_check=True)
  model = onnx.load(str(output))
  assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
  spec = json.loads((tmp_path / "out" / "generator.onnx.json").read_text())
  assert spec["input"] == {"name": "input", "shape": ["N", 3, 32, 32], "dtype": "float32", "layout": "NCHW",
                           "range": [-1.0, 1.0], "meaning": spec["input"]["meaning"]}
  assert (spec["output"]["name"], spec["output"]["shape"]) == ("output", ["N", 3, 32, 32])
  assert (spec["step"], spec["mode"], spec["pixels"]["low"], spec["model"]["upsampling"]) == (5, "eval", -1.0, "nearest")
  properties = {entry.key: entry.value for entry in model.metadata_props}
  assert properties == {key: value if isinstance(value, str) else json.dumps(value) for key, value in spec.items()}
  sar = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  assert_equal_to_ours(load_generator(workdir), str(output), sar)


def test_an_unknown_format_is_one_line_and_exit_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "sar2optical.commands.export", "--format=tflite", f"--workdir={tmp_path}",
                           f"--output={tmp_path / 'g'}"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == ("error: --format: expected one of stablehlo, onnx, torch, "
                                                    "got 'tflite'")
  assert list(tmp_path.iterdir()) == []


def test_bad_workdir_and_output_are_named_and_nothing_is_left(tmp_path):
  with pytest.raises(CheckpointError, match=f"no checkpoints in {tmp_path / 'empty'}"):
    onnx_graph.export_onnx(tmp_path / "empty", tmp_path / "out" / "g.onnx")
  workdir = make_workdir(tmp_path / "run")
  (tmp_path / "file").write_text("")
  with pytest.raises(DataError, match=f"--output folder {tmp_path / 'file'} cannot be created"):
    onnx_graph.export_onnx(workdir, tmp_path / "file" / "g.onnx")
  (tmp_path / "taken.onnx").mkdir()  # a folder where the model would go
  with pytest.raises(DataError, match=f"{tmp_path / 'taken.onnx'} cannot be written"):
    onnx_graph.export_onnx(workdir, tmp_path / "taken.onnx")
  assert sorted(path.name for path in tmp_path.iterdir()) == ["file", "run", "taken.onnx"]
  assert list((tmp_path / "taken.onnx").iterdir()) == []


def test_without_onnx_the_error_says_how_to_install(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
  monkeypatch.delitem(sys.modules, "sar2optical.interop.onnx_graph")  # imported afresh, as in a process without onnx
  monkeypatch.delattr(sar2optical.interop, "onnx_graph")
  with pytest.raises(ConfigError, match=r"--format=onnx needs the onnx package.*pip install 'sar2optical\[onnx\]'"):
    export_command.export("onnx", str(tmp_path), str(tmp_path / "g.onnx"), "latest", ())
