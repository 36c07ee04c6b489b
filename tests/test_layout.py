"""The package's layout as the README's architecture section states it: layers, no test switches, old paths kept."""

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGE = REPO / "sar2optical"


def modules_loaded_by(module: str) -> set[str]:
  """The sar2optical modules that importing `module` loads, in a fresh interpreter."""
  code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('sar2optical')))"
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-2000:]
  return set(result.stdout.split())


@pytest.mark.parametrize("module, higher", [
    ("sar2optical.interop.torch_import", {"sar2optical.training.loop", "sar2optical.evaluation.workflow", "sar2optical.commands"}),
    ("sar2optical.evaluation.workflow", {"sar2optical.training.loop", "sar2optical.training.actions", "sar2optical.commands"}),
    ("sar2optical.inference.tile_engine", {"sar2optical.training.loop", "sar2optical.evaluation.workflow", "sar2optical.commands",
                                 "sar2optical.inference.restore", "sar2optical.checkpoints.manager"}),
    ("sar2optical.inference.translator", {"sar2optical.training.loop", "sar2optical.evaluation.workflow", "sar2optical.commands"}),
    ("sar2optical.model.networks", {"sar2optical.training.state", "sar2optical.checkpoints.manager", "sar2optical.data.pipeline"}),
])
def test_no_module_imports_a_higher_layer(module, higher):
  assert not modules_loaded_by(module) & higher


def test_production_code_reads_no_test_switch():
  for path in PACKAGE.rglob("*.py"):
    text = path.read_text()
    assert not re.search(r"(os\.environ|getenv)[^\n]*TEST", text), path
    assert "SAR2OPTICAL_TEST" not in text, path


def test_every_module_the_architecture_section_names_exists():
  readme = (REPO / "README.md").read_text()
  section = readme[readme.index("## Architecture"):readme.index("Design points:")]
  entries = re.findall(r"[├└]─ ([^\s,]+(?:, [^\s,]+)*)", section)
  named = [name for entry in entries for name in entry.split(", ")]
  assert len(named) > 30
  for name in named:
    candidates = [PACKAGE / name, REPO / name, PACKAGE / "data" / name, PACKAGE / "training" / name]
    assert any(path.exists() for path in candidates), name
  for path in PACKAGE.rglob("*.py"):
    if path.name != "__init__.py" and path.parent.name not in ("commands", "configs"):  # listed as folders
      assert path.name in section, f"{path.relative_to(REPO)} is not in the README's architecture section"


@pytest.mark.parametrize("module, name", [
    ("sar2optical.convert", "convert"), ("sar2optical.interop.stablehlo", "export"), ("sar2optical.evaluation.crossval", "crossval"),
    ("sar2optical.data.split", "split"), ("sar2optical.data.check", "check"), ("sar2optical.data.build_tfds", "build_tfds"),
    ("sar2optical.data.synthetic", "demo_data"), ("sar2optical.demo", "demo")])
def test_documented_module_commands_still_run(module, name):
  """`python -m OLD.PATH --helpfull` lists the flags the command module in sar2optical/commands/ defines (absl exits 1)."""
  result = subprocess.run([sys.executable, "-m", module, "--helpfull"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert f"sar2optical/commands/{name}.py:\n  --" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
