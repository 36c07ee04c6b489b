"""Sphinx configuration of the sar2optical docs: Markdown pages (MyST) and an API reference from the docstrings.

  pip install -e ".[docs]"
  python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's package, also when it is not installed

import sar2optical  # noqa: E402  (light: JAX is imported by the API reference's modules, not here)

project = "sar2optical"
author = "the sar2optical authors"
copyright = "the sar2optical authors; MIT licence"
release = version = sar2optical.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_heading_anchors = 3  # links to sections as page.md#a-heading
myst_enable_extensions = ["colon_fence"]

# The API reference imports the modules it documents; the optional extras' packages are stood in for.
autodoc_mock_imports = ["gradio", "onnx"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # a class's "Attributes:" as fields of the class, not as separate attribute entries

html_theme = "furo"
html_title = f"sar2optical {release}"
html_static_path: list[str] = []

# The changelog page shows the repository's CHANGELOG.md when there is one.
_CHANGELOG = ROOT / "CHANGELOG.md"
_CHANGELOG_MARKER = "<!-- changelog -->"


def _include_changelog(app, docname: str, source: list[str]) -> None:
  if docname == "changelog" and _CHANGELOG.is_file():
    app.env.note_dependency(str(_CHANGELOG))  # an edit of CHANGELOG.md rebuilds the page
    text = _CHANGELOG.read_text(encoding="utf-8")
    # Its own title gives way to the page's; its sections (## ...) become the page's.
    lines = [line for line in text.splitlines() if not line.startswith("# ")]
    source[0] = source[0].replace(_CHANGELOG_MARKER, "\n".join(lines))


def _module_docstring_as_written(app, what: str, name: str, obj, options, lines: list[str]) -> None:
  """A module's docstring is plain text laid out for `--help` (commands, aligned columns), not reStructuredText:
  its first paragraph stays the summary, the rest is shown as written, in a literal block."""
  if what != "module" or "" not in lines:
    return
  rest = lines[lines.index("") + 1:]
  if any(line.strip() for line in rest):
    del lines[lines.index(""):]
    lines.extend(["", "::", ""] + [f"  {line}" if line else "" for line in rest] + [""])


def setup(app):
  app.connect("source-read", _include_changelog)
  app.connect("autodoc-process-docstring", _module_docstring_as_written)
