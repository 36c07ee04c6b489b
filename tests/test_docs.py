"""The README and the docs site: the config table matches the config, the README stays a short model page with
the set-up commands CI runs, no lab notes leak into either, and the site builds without a warning."""

import importlib.util
import re
import subprocess
import sys

import pytest
from conftest import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
# Text for the developers of one machine, not for users: tracker numbers, the benchmarks' CPU lock, a device tool.
LAB_TEXT = re.compile(r"issue \d+|cpu\.lock|flock|run\(command=", re.IGNORECASE)
TABLE = re.compile(r"<!-- config-table:start -->\n(.*?)<!-- config-table:end -->", re.DOTALL)


def config_table_module():
  spec = importlib.util.spec_from_file_location("config_table", DOCS / "config_table.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_config_table_in_the_docs_is_the_scripts_output():
  page = (DOCS / "configs.md").read_text()
  found = TABLE.search(page)
  assert found, "docs/configs.md lacks the <!-- config-table:start --> ... <!-- config-table:end --> markers"
  assert found.group(1) == config_table_module().table(), (
      "docs/configs.md's table of config fields is out of date: replace it with the output of "
      "`python docs/config_table.py`")


def test_every_config_field_has_a_meaning():
  meanings = config_table_module().source_meanings()
  missing = [name for name, meaning in meanings.items() if not meaning]
  assert not missing, f"config fields without a meaning (give each a trailing # comment in fields.py): {missing}"


def test_the_readme_is_a_short_model_page_without_lab_notes():
  text = README.read_text()
  assert len(text.splitlines()) < 250, "README.md is the model page: keep it under 250 lines, move detail to docs/"
  leaks = sorted({match.group(0) for match in LAB_TEXT.finditer(text)})
  assert not leaks, f"README.md holds text that is not for users: {leaks}"


def test_the_docs_hold_no_lab_notes():
  for page in sorted(DOCS.rglob("*.md")):
    if "_build" in page.parts:
      continue
    leaks = sorted({match.group(0) for match in LAB_TEXT.finditer(page.read_text())})
    assert not leaks, f"{page.relative_to(REPO)} holds text that is not for users: {leaks}"


def test_the_readme_runs_the_test_command_ci_runs_and_links_pages_that_exist():
  text = README.read_text()
  blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
  assert len(blocks) >= 2, "README.md's quickstart: two fenced bash commands (the main job, the tests)"
  ci_command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
  assert blocks[1].strip() == ci_command, "README.md's second command is the test command .ci/run runs"
  assert blocks[0].strip().startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e .")
  for target in re.findall(r"\]\(((?:docs|bench)/[^)#\s]+)", text):
    assert (REPO / target).exists(), f"README.md links {target}, which does not exist"


def test_the_docs_build_without_a_warning(tmp_path):
  for module in ("sphinx", "myst_parser", "furo"):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"{module} is not installed: pip install -e '.[docs]' to build the docs")
  result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
  assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr[-4000:]
  assert (tmp_path / "html" / "reference.html").is_file()
