"""The package's layout as docs/architecture.md states it: wings stacked with no upward import and no cycle,
inference free of training, every module on the page, no test switches, the old paths of 0.1 still working."""

import ast
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGE = REPO / "sar2optical"
# Lowest first: a module may import its own wing and the wings before it, never one after it.
WINGS = ("core", "model", "data", "configs", "metrics", "checkpoints", "inference", "training", "evaluation",
         "interop", "web", "commands")
# Modules outside the wings: the package face, the version file that installing writes (from git tags), and the
# paths of 0.1 that forward to their new places for one release.
FACE = ("__init__.py", "_version.py")
MOVED = ("_moved.py", "convert.py", "crossval.py", "demo.py", "export.py", "translator.py", "data/split.py",
         "data/demo.py")


def module_name(path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def wing_modules() -> dict[str, tuple[str, object]]:
  """{module: (its wing, its path)} of every module in a wing (the moved paths and the face excluded)."""
  modules = {}
  for path in PACKAGE.rglob("*.py"):
    relative = path.relative_to(PACKAGE).as_posix()
    if relative not in (*FACE, *MOVED):
      modules[module_name(path)] = (relative.split("/")[0], path)
  return modules


def imported_modules(path) -> set[str]:
  """The sar2optical modules `path` imports anywhere in it (functions included), each by its full name."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names if alias.name.startswith("sar2optical")}
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sar2optical"):
      found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
  return found


def import_graph() -> dict[str, set[str]]:
  """{module: the wing modules it imports} over the wings."""
  modules = wing_modules()
  return {module: imported_modules(path) & modules.keys() for module, (_, path) in modules.items()}


def test_no_wing_imports_a_higher_one():
  modules = {module: wing for module, (wing, _) in wing_modules().items()}
  assert set(modules.values()) == set(WINGS), "a folder of sar2optical/ is not a wing of WINGS (or one is missing)"
  upward = [f"{module} ({modules[module]}) imports {target} ({modules[target]})"
            for module, targets in import_graph().items() for target in targets
            if WINGS.index(modules[target]) > WINGS.index(modules[module])]
  assert not upward, "\n".join(upward)


def test_the_imports_have_no_cycle():
  graph, state, cycles = import_graph(), {}, []

  def visit(module: str, trail: list[str]) -> None:
    state[module] = "open"
    for target in sorted(graph[module]):
      if state.get(target) == "open":
        cycles.append(" → ".join([*trail[trail.index(target):], target]))
      elif target not in state:
        visit(target, [*trail, target])
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  assert not cycles, "\n".join(cycles)


def modules_loaded_by(module: str) -> set[str]:
  """The sar2optical modules that importing `module` loads, in a fresh interpreter."""
  code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('sar2optical')))"
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-2000:]
  return set(result.stdout.split())


def test_inference_loads_nothing_of_training():
  """Translating with a checkpoint's generator needs neither the training wing nor the optimizer states."""
  loaded = modules_loaded_by("sar2optical.inference.translator")
  assert not {name for name in loaded if name.startswith(("sar2optical.training", "sar2optical.evaluation",
                                                          "sar2optical.interop", "sar2optical.commands"))}


def test_production_code_reads_no_test_switch():
  for path in PACKAGE.rglob("*.py"):
    text = path.read_text()
    assert not re.search(r"(os\.environ|getenv)[^\n]*TEST", text), path
    assert "SAR2OPTICAL_TEST" not in text, path


def test_the_architecture_page_names_every_module_and_only_modules_that_exist():
  page = (REPO / "docs" / "architecture.md").read_text()
  named = set(re.findall(r"[├└]─ ([\w/]+\.py)", page))
  assert named, "docs/architecture.md has no package tree (lines '├─ wing/module.py  what it does')"
  for name in named:
    assert (PACKAGE / name).is_file(), f"docs/architecture.md names {name}, which is not in sar2optical/"
  for path in PACKAGE.rglob("*.py"):
    relative = path.relative_to(PACKAGE).as_posix()
    if path.name not in FACE:
      assert relative in named, f"sar2optical/{relative} is not in docs/architecture.md's package tree"
  for wing in WINGS:
    assert re.search(rf"\b{wing}\b", page[:page.index("─")]), f"the wing {wing} has no rule above the tree"


def test_the_drawing_of_the_imports_is_current():
  result = subprocess.run([sys.executable, "docs/import_graph.py", "--check"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
  assert result.returncode == 0, "docs/images/imports.dot is out of date: run python docs/import_graph.py"


COMMANDS = ("convert", "export", "crossval", "split", "check", "build_tfds", "demo_data", "demo")
OLD_COMMAND_PATHS = {"sar2optical.convert": "convert", "sar2optical.export": "export",
                     "sar2optical.crossval": "crossval", "sar2optical.data.split": "split",
                     "sar2optical.data.check": "check", "sar2optical.data.build_tfds": "build_tfds",
                     "sar2optical.data.demo": "demo_data", "sar2optical.demo": "demo"}


@pytest.mark.parametrize("module, name", [*((f"sar2optical.commands.{name}", name) for name in COMMANDS),
                                          *OLD_COMMAND_PATHS.items()])
def test_documented_module_commands_still_run(module, name):
  """`python -m PATH --helpfull` lists the flags the command module in sar2optical/commands/ defines (absl exits 1);
  the paths of 0.1 too, for one release."""
  result = subprocess.run([sys.executable, "-m", module, "--helpfull"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert f"sar2optical/commands/{name}.py:\n  --" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize("old, new, name", [
    ("sar2optical.translator", "sar2optical.inference.translator", "load"),
    ("sar2optical.export", "sar2optical.interop.stablehlo", "export_workdir"),
    ("sar2optical.crossval", "sar2optical.evaluation.crossval", "crossval"),
    ("sar2optical.convert", "sar2optical.interop.torch_import", "convert")])
def test_old_import_paths_forward_with_a_deprecation_warning(old, new, name):
  code = (f"import importlib, warnings\nwarnings.simplefilter('error', DeprecationWarning)\n"
          f"try:\n  importlib.import_module({old!r})\nexcept DeprecationWarning as warning:\n  print(warning)\n"
          f"warnings.simplefilter('ignore')\nold, new = importlib.import_module({old!r}), importlib.import_module({new!r})\n"
          f"print(getattr(old, {name!r}) is getattr(new, {name!r}))")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines() == [f"{old} moved to {new}; the old path goes in 0.3", "True"], result.stdout
