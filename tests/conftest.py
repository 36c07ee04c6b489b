"""Shared test helpers: the real SEN1-2 sample beside the repository."""

import pathlib

import pytest

# Real SEN1-2 pairs in ../shared/data/sen1-2 beside the repository root (not in the repo).
SEN12_ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared/data/sen1-2"

requires_sen12 = pytest.mark.skipif(
    not SEN12_ROOT.is_dir(), reason=f"real SEN1-2 sample not found at {SEN12_ROOT}")
