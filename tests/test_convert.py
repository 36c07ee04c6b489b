"""PyTorch SAR2Optical checkpoints in: the restricted .pth reader, convert, and fine-tuning with init_from."""

import logging
import math
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest
from conftest import REPO, nhwc, randomise_running_stats, tiny_config

from sar2optical.checkpoints import manager
from sar2optical.checkpoints.metadata import config_from_metadata
from sar2optical.core import pth_files
from sar2optical.core.errors import CheckpointError, ConfigError
from sar2optical.evaluation import workflow
from sar2optical.inference.restore import load_generator
from sar2optical.interop import torch_import
from sar2optical.model.pixels import PixelSpec
from sar2optical.training import loop
from sar2optical.training import mesh as mesh_lib
from sar2optical.training import recipe as recipe_lib
from sar2optical.training import state as state_lib


def save_reference(torch_reference, directory: pathlib.Path, levels: int, in_channels: int, upsampling: str):
  """The PyTorch G and D in eval mode, saved as gen.pth and disc.pth, with every variable made to matter.

  Random running statistics, BatchNorm scales and shifts, and conv weights scaled to keep
  activations of order 1 (outputs spread, not saturated), so that a converter dropping or
  misplacing any of them fails the comparison.
  """
  import torch
  torch.manual_seed(levels * 10 + in_channels)
  gen = torch_reference.UnetGenerator(in_channels, 3, upsampling != "none",
                                      mode="nearest" if upsampling == "none" else upsampling, levels=levels)
  disc = torch_reference.PatchGAN(in_channels + 3)
  for module in (gen, disc):
    module.apply(torch_reference.init_weights)
    with torch.no_grad():
      for layer in module.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):  # N(0, 0.02) → N(0, 1/fan-in)
          layer.weight.mul_(1.0 / (0.02 * math.sqrt(layer.weight.numel() / layer.out_channels)))
        elif isinstance(layer, torch.nn.BatchNorm2d):
          layer.weight.uniform_(0.5, 1.5)
          layer.bias.uniform_(-0.5, 0.5)
  randomise_running_stats(torch, gen, disc)
  gen.eval(), disc.eval()
  directory.mkdir(parents=True, exist_ok=True)
  torch.save(gen.state_dict(), directory / "gen.pth")
  torch.save(disc.state_dict(), directory / "disc.pth")
  return gen, disc


def latest_state(workdir: pathlib.Path, config) -> state_lib.TrainState:
  model = recipe_lib.make_recipe(config, PixelSpec())
  abstract = state_lib.abstract_state(model, mesh_lib.make_mesh(), config.image_size, config.model.in_channels)
  checkpoints = manager.Checkpoints(workdir, create=False)
  state = checkpoints.restore(checkpoints.latest_step(), abstract)
  checkpoints.close()
  return state


def max_differences(workdir: pathlib.Path, gen, disc) -> tuple[float, float]:
  """Largest |ours − PyTorch| of the generator outputs and the discriminator logits, eval mode."""
  import torch
  generator = load_generator(workdir)
  size, channels = generator.image_size, generator.in_channels
  rng = np.random.default_rng(1)
  sar = rng.integers(0, 256, (2, size, size, channels), dtype=np.uint8)
  optical = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  to_torch = lambda pixels: torch.from_numpy(np.asarray(PixelSpec().to_model(pixels)).transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    expected_fake = nhwc(gen(to_torch(sar)))
    expected_logits = nhwc(disc(torch.cat([to_torch(sar), to_torch(optical)], 1)))
  state = latest_state(workdir, generator.config)
  logits = recipe_lib.make_recipe(generator.config, PixelSpec()).discriminator.apply({"params": state.d_params, "batch_stats": state.d_stats},
                                               PixelSpec().to_model(sar), PixelSpec().to_model(optical), train=False)
  return float(np.abs(np.asarray(generator(sar)) - expected_fake).max()), float(np.abs(logits - expected_logits).max())


def test_cli_converts_without_torch_into_a_workdir_that_equals_pytorch(torch_reference, tmp_path):
  gen, disc = save_reference(torch_reference, tmp_path / "torch", levels=5, in_channels=3, upsampling="none")
  workdir = tmp_path / "converted"
  argv = ["convert", f"--torch_gen={tmp_path / 'torch/gen.pth'}", f"--torch_disc={tmp_path / 'torch/disc.pth'}",
          f"--output={workdir}", "--image_size=64"]
  no_torch = ("import runpy, sys; sys.modules['torch'] = None; "  # `import torch` now raises ImportError
              f"sys.argv = {argv!r}; runpy.run_module('sar2optical.convert', run_name='__main__')")
  result = subprocess.run([sys.executable, "-c", no_torch], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  config = config_from_metadata(manager.Checkpoints(workdir, create=False).metadata(0))
  assert (config.model.levels, config.model.in_channels, config.model.upsampling) == (5, 3, "none")
  assert (workdir / "config.json").is_file()
  g_difference, d_difference = max_differences(workdir, gen, disc)
  assert g_difference <= 1e-4 and d_difference <= 1e-4, (g_difference, d_difference)


@pytest.mark.parametrize("levels, size, in_channels, upsampling", [
    (5, 64, 3, "bilinear"), (5, 64, 1, "nearest"), (8, 256, 3, "none")])
def test_converted_networks_equal_pytorch(torch_reference, tmp_path, levels, size, in_channels, upsampling):
  gen, disc = save_reference(torch_reference, tmp_path / "torch", levels, in_channels, upsampling)
  torch_import.convert(tmp_path / "torch/gen.pth", tmp_path / "converted", torch_disc=tmp_path / "torch/disc.pth",
                  upsampling=upsampling, image_size=size)
  g_difference, d_difference = max_differences(tmp_path / "converted", gen, disc)
  assert g_difference <= 1e-4 and d_difference <= 1e-4, (g_difference, d_difference)


def test_converted_workdir_is_scored_by_eval(torch_reference, demo_root, tmp_path):
  save_reference(torch_reference, tmp_path / "torch", levels=3, in_channels=3, upsampling="none")
  torch_import.convert(tmp_path / "torch/gen.pth", tmp_path / "converted", image_size=32, data_root=str(demo_root))
  assert not manager.Checkpoints(tmp_path / "converted", create=False).has_data_iterator(0)
  (result,) = workflow.evaluate(tmp_path / "converted", split="all")
  assert result["step"] == 0 and result["n"] == 24 and np.isfinite(result["overall"]["psnr"]["mean"])


@pytest.mark.parametrize("upsampling, fragment", [
    (None, "pass --upsampling=nearest"), ("none", "does not fit its weights")])
def test_upsampling_must_be_named_and_fit(torch_reference, tmp_path, upsampling, fragment):
  save_reference(torch_reference, tmp_path / "torch", levels=3, in_channels=1, upsampling="bilinear")
  with pytest.raises(CheckpointError, match=fragment):
    torch_import.convert(tmp_path / "torch/gen.pth", tmp_path / "converted", upsampling=upsampling, image_size=32)


def test_unknown_missing_and_misshaped_keys_are_named(torch_reference, tmp_path):
  import torch
  save_reference(torch_reference, tmp_path / "torch", levels=3, in_channels=3, upsampling="none")
  state_dict = torch.load(tmp_path / "torch/gen.pth")
  del state_dict["head.0.bias"]
  state_dict["decoder.dec9.conv_block.0.weight"] = torch.zeros(1)
  state_dict["decoder.dec1.conv_block.1.running_var"] = torch.ones(7)
  torch.save(state_dict, tmp_path / "bad.pth")
  with pytest.raises(CheckpointError) as error:
    torch_import.convert(tmp_path / "bad.pth", tmp_path / "converted", image_size=32)
  for fragment in (str(tmp_path / "bad.pth"), "missing key head.0.bias",
                   "unexpected key decoder.dec9.conv_block.0.weight", "mis-shaped decoder.dec1.conv_block.1.running_var"):
    assert fragment in str(error.value)
  assert not (tmp_path / "converted" / "checkpoints").exists()


class _Exploit:
  """Unpickling this runs `function(argument)`: what a hostile .pth would do to a plain pickle.load."""

  def __init__(self, function, argument):
    self.function, self.argument = function, argument

  def __reduce__(self):
    return self.function, (self.argument,)


def write_pth(path: pathlib.Path, payload: bytes) -> None:
  """A zip laid out as torch.save writes it, with `payload` as its data.pkl."""
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", payload)
    archive.writestr("archive/byteorder", "little")
    archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize("function, global_name", [(os.system, "posix.system"), (exec, "__builtin__.exec")])
def test_pickled_code_is_refused_and_never_run(tmp_path, function, global_name):
  marker = tmp_path / "executed"
  command = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w').close()"
  payload = pickle.dumps({"head.0.bias": _Exploit(function, command)}, protocol=2)
  write_pth(tmp_path / "hostile.pth", payload)
  with pytest.raises(CheckpointError, match=f"refused to load global {global_name}"):
    pth_files.load_state_dict(tmp_path / "hostile.pth")
  with pytest.raises(CheckpointError, match="refused"):
    torch_import.convert(tmp_path / "hostile.pth", tmp_path / "converted")
  assert not marker.exists()
  pickle.loads(payload)  # the same bytes through a plain unpickler: the payload is live
  assert marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (pickle.dumps({"a": 1}), "legacy format of torch < 1.6"),
    (None, "not a torch.save state_dict"),
])
def test_other_files_are_refused(tmp_path, content, fragment):
  path = tmp_path / "model.pth"
  if content is None:
    with zipfile.ZipFile(path, "w") as archive:
      archive.writestr("model/constants.pkl", b"")
  else:
    path.write_bytes(content)
  with pytest.raises(CheckpointError, match=fragment):
    pth_files.load_state_dict(path)


def test_reads_views_dtypes_and_parameters(tmp_path):
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  base = torch.randn(6, 5)
  tensors = {"plain": base, "transposed": base.t(), "slice": base[2:4, 1:], "scalar": torch.tensor(7),
             "half": torch.randn(4).half(), "bfloat16": torch.randn(3).bfloat16(), "empty": torch.zeros(0, 3),
             "parameter": torch.nn.Parameter(torch.randn(2, 2))}
  torch.save(tensors, tmp_path / "tensors.pth")
  loaded = pth_files.load_state_dict(tmp_path / "tensors.pth")
  for name, tensor in tensors.items():
    expected = tensor.detach().float().numpy() if tensor.dtype == torch.bfloat16 else tensor.detach().numpy()
    np.testing.assert_array_equal(np.asarray(loaded[name], expected.dtype), expected, err_msg=name)
  assert loaded["bfloat16"].dtype.name == "bfloat16" and loaded["half"].dtype == np.float16
  assert loaded["scalar"].shape == () and loaded["scalar"].dtype == np.int64


def test_reads_the_legacy_format(tmp_path):
  """torch < 1.6's format (torchvision's and pytorch-fid's published weights): same arrays as the zip format."""
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  base = torch.randn(6, 5)
  tensors = {"plain": base, "transposed": base.t(), "slice": base[2:4, 1:], "half": torch.randn(4).half(),
             "parameter": torch.nn.Parameter(torch.randn(2, 2)), "count": torch.tensor(3)}
  torch.save(tensors, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
  assert not zipfile.is_zipfile(tmp_path / "legacy.pth")
  loaded = pth_files.load_state_dict(tmp_path / "legacy.pth")
  for name, tensor in tensors.items():
    np.testing.assert_array_equal(loaded[name], tensor.detach().numpy(), err_msg=name)
    assert loaded[name].dtype == tensor.detach().numpy().dtype


def test_reads_big_endian_storages(tmp_path):
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  tensors = {"weight": torch.randn(3, 4), "transposed": torch.randn(4, 3).t()}
  torch.save(tensors, tmp_path / "little.pth")
  with zipfile.ZipFile(tmp_path / "little.pth") as little, zipfile.ZipFile(tmp_path / "big.pth", "w") as big:
    for info in little.infolist():  # what torch.save writes on a big-endian machine
      data = little.read(info)
      if info.filename.endswith("/byteorder"):
        data = b"big"
      elif "/data/" in info.filename:
        data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
      big.writestr(info, data)
  loaded = pth_files.load_state_dict(tmp_path / "big.pth")
  for name, tensor in tensors.items():
    np.testing.assert_array_equal(loaded[name], tensor.numpy())


def tiny_trained(root: pathlib.Path, workdir: pathlib.Path) -> pathlib.Path:
  loop.train(tiny_config(root, num_train_steps=2, checkpoint_every_steps=2, log_every_steps=2,
                            sample_every_steps=2), workdir)
  return workdir


@pytest.fixture(scope="module")
def source(demo_root, tmp_path_factory) -> pathlib.Path:
  """A tiny run (3 levels at 32², 2 steps) to start others from."""
  return tiny_trained(demo_root, tmp_path_factory.mktemp("source"))


def test_init_from_starts_a_new_run_from_trained_networks(demo_root, source, tmp_path):
  config = tiny_config(demo_root, num_train_steps=1, init_from=str(source), log_every_steps=1,
                       **{"optimizer.learning_rate": 0.0})
  loop.train(config, tmp_path / "tuned")
  before, after = latest_state(source, config), latest_state(tmp_path / "tuned", config)
  assert int(before.step) == 2 and int(after.step) == 1
  assert int(after.g_opt_state[0].count) == 1  # a fresh optimizer, not the source's
  # With learning rate 0 the one step leaves the parameters as they were loaded.
  jax.tree.map(np.testing.assert_array_equal, (before.g_params, before.d_params), (after.g_params, after.d_params))


@pytest.mark.parametrize("overrides, fragment", [
    ({"model.levels": 2, "model.upsampling": "nearest"},
     "config.model.levels is 3 there, 2 here; config.model.upsampling is 'none' there, 'nearest' here"),
    ({"init_from": "/nonexistent/run"}, "no checkpoints in /nonexistent/run"),
])
def test_init_from_names_what_does_not_fit(demo_root, source, tmp_path, overrides, fragment):
  config = tiny_config(demo_root, num_train_steps=1, **{"init_from": str(source), **overrides})
  with pytest.raises(ConfigError, match=r"config\.init_from: .*" + fragment.replace("(", r"\(")):
    loop.train(config, tmp_path / "other")


def test_resuming_a_checkpoint_without_data_position(demo_root, source, tmp_path, caplog):
  """A converted-style checkpoint (no iterator position) resumes with fresh data; it wins over init_from."""
  config = tiny_config(demo_root, num_train_steps=3, log_every_steps=1, init_from="/nonexistent/run")
  checkpoints = manager.Checkpoints(source, create=False)
  metadata = checkpoints.metadata(2)
  checkpoints.close()
  copy = manager.Checkpoints(tmp_path / "copy")
  copy.save(2, latest_state(source, config), None, metadata)
  copy.wait()
  copy.close()
  caplog.set_level(logging.INFO, logger="absl")
  loop.train(config, tmp_path / "copy")
  assert int(latest_state(tmp_path / "copy", config).step) == 3
  assert "holds no data iterator position" in caplog.text
  assert "config.init_from applies to new runs only" in caplog.text
