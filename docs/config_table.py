"""Prints the Markdown table of the training config's fields that docs/configs.md holds between its markers.

  python docs/config_table.py

Each row is one field of `sar2optical.configs.fields.default_config()`, in the order the source sets them:
its dotted name, its default (from the config itself) and its meaning, read from the trailing `# comment`
of its `config.<field> = ...` line in sar2optical/configs/fields.py, or else from the comment lines right
above that line (tests/test_docs.py fails for a field with neither).
tests/test_docs.py also checks that docs/configs.md holds exactly this script's output.
"""

import ast
import io
import json
import pathlib
import sys
import tokenize
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
FIELDS_PY = REPO / "sar2optical" / "configs" / "fields.py"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"

def _dotted(target: ast.expr) -> str | None:
  """`config.a.b` → "a.b"; None for any other target."""
  parts = []
  while isinstance(target, ast.Attribute):
    parts.append(target.attr)
    target = target.value
  if isinstance(target, ast.Name) and target.id == "config" and parts:
    return ".".join(reversed(parts))
  return None


def _comments(source: str) -> dict[int, str]:
  """{line number: the text of the comment on that line}."""
  found = {}
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.COMMENT:
      found[token.start[0]] = token.string.lstrip("#").strip()
  return found


def source_meanings(source: str | None = None) -> dict[str, str]:
  """{dotted field: its comment in fields.py ("" when it has none)}, in the order default_config() sets them."""
  source = FIELDS_PY.read_text() if source is None else source
  lines = source.splitlines()
  comments = _comments(source)
  function = next(node for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.FunctionDef) and node.name == "default_config")
  meanings = {}
  for node in function.body:
    if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
      continue
    name = _dotted(node.targets[0])
    if name is None or (isinstance(node.value, ast.Call) and ast.unparse(node.value.func).endswith("ConfigDict")):
      continue
    meaning = comments.get(node.lineno, "")
    if not meaning:  # the comment lines right above, if any
      above, line = [], node.lineno - 1
      while line >= 1 and lines[line - 1].strip().startswith("#"):
        above.insert(0, comments.get(line, ""))
        line -= 1
      meaning = " ".join(above)
    meanings[name] = meaning
  return meanings


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
  return out


def _cell(text: str) -> str:
  return text.replace("|", "\\|")


def _default(value: Any) -> str:
  return f"`{json.dumps(value) if isinstance(value, str) else repr(value)}`"


def table() -> str:
  """The Markdown table: field, default, meaning; one row per field of default_config()."""
  sys.path.insert(0, str(REPO))
  from sar2optical.configs import fields  # after the path: runs from a checkout
  defaults = _flat(fields.default_config().to_dict())
  meanings = source_meanings()
  if set(meanings) != set(defaults):
    raise SystemExit(f"fields.py's assignments and default_config() differ: {sorted(set(meanings) ^ set(defaults))}")
  rows = ["| field | default | meaning |", "|---|---|---|"]
  for name, meaning in meanings.items():
    rows.append(f"| `{name}` | {_cell(_default(defaults[name]))} | {_cell(meaning)} |")
  return "\n".join(rows) + "\n"


if __name__ == "__main__":
  sys.stdout.write(table())
