"""The networks exported as the original's state_dicts (.pth and .safetensors), and read back by convert."""

import sys

import jax
import numpy as np
import pytest
import safetensors.numpy
from conftest import make_workdir
from test_convert import latest_state, max_differences, save_reference

from sar2optical.core.errors import CheckpointError, ConfigError, DataError
from sar2optical.inference.restore import load_generator
from sar2optical.interop import torch_import
from sar2optical.interop.torch_export import export_torch

TOLERANCE = 1e-4
FILES = ["disc.pth", "disc.safetensors", "gen.pth", "gen.safetensors"]


def load_pth(path) -> dict[str, np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top (a test dependency the callers skip without)
  return {key: value.numpy() for key, value in torch.load(path, weights_only=True).items()}


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
  """The same keys, and under each the same dtype, shape and bytes."""
  assert sorted(a) == sorted(b)
  for key in a:
    assert (a[key].dtype, a[key].shape, a[key].tobytes()) == (b[key].dtype, b[key].shape, b[key].tobytes()), key


@pytest.mark.parametrize("in_channels, upsampling", [(1, "none"), (3, "bilinear")])
def test_exported_state_dicts_load_strictly_into_the_original_and_give_our_outputs(torch_reference, tmp_path,
                                                                                  in_channels, upsampling):
  import torch  # pylint: disable=g-import-not-at-top (torch_reference skips without it)
  workdir = make_workdir(tmp_path / "run", in_channels, upsampling)
  written = export_torch(workdir, tmp_path / "torch")
  assert sorted(path.name for path in written) == FILES == sorted(path.name for path in (tmp_path / "torch").iterdir())
  assert len({path.stat().st_mode for path in written}) == 1  # safetensors' own files would be private
  model = load_generator(workdir).config.model
  gen = torch_reference.UnetGenerator(in_channels, 3, upsampling != "none",
                                      mode="nearest" if upsampling == "none" else upsampling, levels=model.levels)
  disc = torch_reference.PatchGAN(in_channels + 3, n_layers=model.disc_layers)
  for network, name in ((gen, "gen"), (disc, "disc")):
    network.load_state_dict(torch.load(tmp_path / "torch" / f"{name}.pth", weights_only=True), strict=True)
    network.eval()
    pth = load_pth(tmp_path / "torch" / f"{name}.pth")
    assert_same_arrays(pth, safetensors.numpy.load_file(tmp_path / "torch" / f"{name}.safetensors"))
    assert all(pth[key] == 5 for key in pth if key.endswith("num_batches_tracked"))  # the checkpoint's step
  g_difference, d_difference = max_differences(workdir, gen, disc)
  print(f"max |PyTorch - ours|: generator {g_difference:.2e}, discriminator {d_difference:.2e}")
  assert g_difference <= TOLERANCE and d_difference <= TOLERANCE, (g_difference, d_difference)


def test_convert_export_convert_is_the_identity(torch_reference, tmp_path):
  """The original's .pth → convert → export gives its arrays back; convert of the .safetensors gives our variables."""
  save_reference(torch_reference, tmp_path / "original", levels=3, in_channels=3, upsampling="nearest")
  torch_import.convert(tmp_path / "original/gen.pth", tmp_path / "b", torch_disc=tmp_path / "original/disc.pth",
                  upsampling="nearest", image_size=32)
  export_torch(tmp_path / "b", tmp_path / "exported")
  for name in ("gen", "disc"):  # num_batches_tracked included: the original's is 0, a converted step is 0
    assert_same_arrays(load_pth(tmp_path / "exported" / f"{name}.pth"), load_pth(tmp_path / "original" / f"{name}.pth"))
  torch_import.convert(tmp_path / "exported/gen.safetensors", tmp_path / "c",
                  torch_disc=tmp_path / "exported/disc.safetensors", upsampling="nearest", image_size=32)
  config = load_generator(tmp_path / "b").config
  b, c = latest_state(tmp_path / "b", config), latest_state(tmp_path / "c", config)
  for network in ("g_params", "g_stats", "d_params", "d_stats"):
    leaves = zip(*(jax.tree.leaves(getattr(state, network)) for state in (b, c)))
    assert all(x.dtype == y.dtype and np.asarray(x).tobytes() == np.asarray(y).tobytes() for x, y in leaves), network


def test_without_torch_the_safetensors_are_written_and_the_error_says_so(monkeypatch, tmp_path):
  workdir = make_workdir(tmp_path / "run")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
  with pytest.raises(ConfigError, match=r"writing .*gen\.pth needs torch.*pip install torch.*gen\.safetensors"):
    export_torch(workdir, tmp_path / "torch")
  assert sorted(path.name for path in (tmp_path / "torch").iterdir()) == ["disc.safetensors", "gen.safetensors"]


def test_bad_inputs_are_named(tmp_path):
  with pytest.raises(CheckpointError, match=f"no checkpoints in {tmp_path / 'empty'}"):
    export_torch(tmp_path / "empty", tmp_path / "torch")
  assert not (tmp_path / "torch").exists()
  (tmp_path / "file").write_text("")
  with pytest.raises(DataError, match=f"--output {tmp_path / 'file'} cannot be created or written"):
    export_torch(make_workdir(tmp_path / "run"), tmp_path / "file")
  (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
  with pytest.raises(CheckpointError, match=f"{tmp_path / 'broken.safetensors'}: cannot be read as safetensors"):
    torch_import.convert(tmp_path / "broken.safetensors", tmp_path / "converted")


def test_a_pixel_discriminator_run_exports_the_generator_only(tmp_path):
  pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  workdir = make_workdir(tmp_path / "run", **{"model.disc": "pixel"})
  assert sorted(path.name for path in export_torch(workdir, tmp_path / "torch")) == ["gen.pth", "gen.safetensors"]
