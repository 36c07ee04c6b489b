r"""Exports a workdir's generator as an ONNX model built from its Flax variables with the `onnx` package.

  python -m sar2optical.commands.export --format=onnx --workdir=runs/pix2pix --output=exported/generator.onnx [--step=latest]

The graph follows the convention of the original SAR2Optical's `torch2onnx.py`, so that onnxruntime code
written for the original's ONNX file (its `onnx_inference.py`) runs ours unchanged:

  input   "input"   float32 (N, C, S, S), NCHW: SAR in the model range, uint8 · 2/255 − 1 with the default
                    pixel mapping (the original's ToTensor + Normalize(0.5, 0.5)); C is the model's SAR channels
                    (the original's checkpoints: 3, the band repeated)
  output  "output"  float32 (N, 3, S, S), NCHW: RGB in the model range (tanh), uint8 = round((y + 1) · 127.5)

N is dynamic, S the workdir's image size. Eval mode: BatchNormalization on the running statistics, no
Dropout. Opset 17 (the original's) in IR version 8. The weights are initializers named as in the original's
state_dict (`encoder.enc2.conv_block.1.running_mean`, ...; `torch_names` maps them), in its layouts,
which are ONNX's (Conv OIHW, ConvTranspose IOHW). Written, each whole or not at all:

  F        the model; its metadata_props state the convention (names, shapes, dtypes, pixel mapping)
  F.json   the same convention, with the step, the model config and the opset
"""

import json
import pathlib
from typing import Any

import numpy as np
import onnx
from absl import logging
from onnx import helper, numpy_helper

from sar2optical.core import storage
from sar2optical.inference.restore import TrainedGenerator, load_generator
from sar2optical.interop import torch_names

OPSET = 17
IR_VERSION = 8  # the IR version opset 17 came with: runtimes of that time load the file too
INPUT, OUTPUT = "input", "output"
_BATCH = "N"
_RESIZE = {"nearest": {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
           "bilinear": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}}


class _Graph:
  """The nodes and initializers of one graph; weights come from a state_dict by the original's names."""

  def __init__(self, state_dict: dict[str, Any]):
    self._state_dict = state_dict
    self.nodes: list[onnx.NodeProto] = []
    self.initializers: dict[str, onnx.TensorProto] = {}

  def weight(self, key: str) -> str:
    if key not in self.initializers:
      self.initializers[key] = numpy_helper.from_array(self._state_dict[key], key)
    return key

  def node(self, op: str, inputs: list[str], output: str | None = None, **attributes: Any) -> str:
    output = output or f"{op}_{len(self.nodes)}"
    self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{len(self.nodes)}", **attributes))
    return output

  def conv(self, x: str, prefix: str, size: int, stride: int = 1, bias: bool = False) -> str:
    inputs = [x, self.weight(f"{prefix}.weight")] + ([self.weight(f"{prefix}.bias")] if bias else [])
    return self.node("Conv", inputs, kernel_shape=[size, size], strides=[stride, stride], pads=[1, 1, 1, 1])

  def batch_norm(self, x: str, prefix: str) -> str:
    names = ("weight", "bias", "running_mean", "running_var")
    return self.node("BatchNormalization", [x, *(self.weight(f"{prefix}.{name}") for name in names)], epsilon=1e-5)

  def down_block(self, x: str, prefix: str, norm: bool) -> str:
    """Conv 4×4 stride 2 (a bias only without norm) → [BatchNorm] → LeakyReLU(0.2), as `networks.DownBlock`."""
    x = self.conv(x, f"{prefix}.0", 4, 2, bias=not norm)
    return self.node("LeakyRelu", [self.batch_norm(x, f"{prefix}.1") if norm else x], alpha=0.2)

  def up_block(self, x: str, prefix: str, upsampling: str) -> str:
    """ConvTranspose 4×4 stride 2, or Resize ×2 + Conv 3×3; → BatchNorm → ReLU, as `networks.UpBlock` in eval mode."""
    if upsampling == "none":
      x = self.node("ConvTranspose", [x, self.weight(f"{prefix}.0.weight")], kernel_shape=[4, 4], strides=[2, 2],
                    pads=[1, 1, 1, 1])
    else:
      scales = f"{prefix}.0.scales"
      self.initializers[scales] = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales)
      x = self.conv(self.node("Resize", [x, "", scales], **_RESIZE[upsampling]), f"{prefix}.0.1", 3)
    return self.node("Relu", [self.batch_norm(x, f"{prefix}.1")])


def convention(generator: TrainedGenerator) -> dict[str, Any]:
  """The graph's interface and the generator it holds: what F.json and the model's metadata_props say."""
  low, high = generator.pixels.low, generator.pixels.high
  size, channels = generator.image_size, generator.in_channels
  return {"format": "ONNX", "opset": OPSET, **generator.describe(),
          "input": {"name": INPUT, "shape": [_BATCH, channels, size, size], "dtype": "float32", "layout": "NCHW",
                    "range": [low, high], "meaning": f"SAR in the model range: uint8 * {(high - low) / 255!r} + {low!r}"},
          "output": {"name": OUTPUT, "shape": [_BATCH, 3, size, size], "dtype": "float32", "layout": "NCHW",
                     "range": [low, high],
                     "meaning": f"RGB in the model range: uint8 = round(clip((y - {low!r}) / {high - low!r}, 0, 1) * 255)"}}


def onnx_model(generator: TrainedGenerator) -> onnx.ModelProto:
  """The generator's eval-mode graph, mirroring `networks.UNetGenerator`; passes `check_model(full_check=True)`."""
  model = generator.config.model
  graph = _Graph(torch_names.to_torch({"params": generator.g_params, "batch_stats": generator.g_stats}))
  x, skips = INPUT, []
  for i in range(1, model.levels + 1):
    x = graph.down_block(x, f"encoder.enc{i}.conv_block", norm=i > 1)
    skips.append(x)
  for i in range(1, model.levels + 1):
    x = graph.up_block(x, f"decoder.dec{i}.conv_block", model.upsampling)
    if i < model.levels:
      x = graph.node("Concat", [skips[model.levels - 1 - i], x], axis=1)
  graph.node("Tanh", [graph.conv(x, "head.0", 3, bias=True)], output=OUTPUT)
  spec = convention(generator)
  values = [helper.make_tensor_value_info(spec[name]["name"], onnx.TensorProto.FLOAT, spec[name]["shape"])
            for name in ("input", "output")]
  result = helper.make_model(helper.make_graph(graph.nodes, "sar2optical_generator", values[:1], values[1:],
                                               list(graph.initializers.values())),
                             opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="sar2optical", doc_string=__doc__.split("\n\n")[0])
  helper.set_model_props(result, {key: value if isinstance(value, str) else json.dumps(value)
                                  for key, value in spec.items()})
  onnx.checker.check_model(result, full_check=True)
  return result


def export_onnx(workdir: str | pathlib.Path, output: str | pathlib.Path, step: str | int = "latest") -> pathlib.Path:
  """Writes the model `output` and `output.json`, each whole or not at all; returns the model's path."""
  generator = load_generator(workdir, step)
  output = storage.writable_file(output, "--output")
  model = onnx_model(generator)
  storage.write_whole(output, model.SerializeToString())
  storage.write_whole(f"{output}.json", json.dumps(convention(generator), indent=2) + "\n")
  logging.info("Exported step %d of %s as ONNX (opset %d) to %s (%.1f MB)", generator.step, workdir, OPSET, output,
               output.stat().st_size / 1e6)
  return output
