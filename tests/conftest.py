"""Shared test helpers: the real SEN1-2 sample beside the repository."""

import pathlib

import pytest

# Real SEN1-2 pairs in ../shared/data/sen1-2 beside the repository root (not in the repo).
SEN12_ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared/data/sen1-2"

requires_sen12 = pytest.mark.skipif(
    not SEN12_ROOT.is_dir(), reason=f"real SEN1-2 sample not found at {SEN12_ROOT}")

# The PyTorch reference model (the original's architecture and state_dict names).
TORCH_REFERENCE = SEN12_ROOT.parents[1] / "bench" / "torch_seed_pix2pix.py"


@pytest.fixture(scope="session")
def torch_reference():
  """The module ../shared/bench/torch_seed_pix2pix.py; skips without torch or the file."""
  pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  if not TORCH_REFERENCE.is_file():
    pytest.skip(f"PyTorch reference not found at {TORCH_REFERENCE}")
  import importlib.util
  spec = importlib.util.spec_from_file_location("torch_seed_pix2pix", TORCH_REFERENCE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
