"""Draws the package's imports between wings: docs/images/imports.dot, and imports.svg beside it (Graphviz).

  python docs/import_graph.py          # rewrites both (needs Graphviz's `dot` for the SVG)
  python docs/import_graph.py --check  # exit 1 if imports.dot is not what the code imports now

Wings are stacked lowest at the bottom, in the order of docs/architecture.md; an arrow A → B says that a
module of wing A imports one of wing B (its label: how many such imports), so every arrow points down.
tests/test_layout.py checks the rules themselves and that imports.dot is current.
"""

import ast
import collections
import itertools
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sar2optical"
WINGS = ("core", "model", "data", "configs", "metrics", "checkpoints", "inference", "training", "evaluation",
         "interop", "web", "commands")
DOT = REPO / "docs" / "images" / "imports.dot"


def wing_of(module: str) -> str | None:
  """The wing of a dotted sar2optical module name, None outside the wings."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def wing_imports() -> collections.Counter:
  """{(importing wing, imported wing): count of import statements}, between different wings."""
  edges = collections.Counter()
  for path in sorted(PACKAGE.rglob("*.py")):
    source = wing_of(".".join(path.relative_to(REPO).with_suffix("").parts))
    if source is None:
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
               else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
      for target in {wing_of(name) for name in names if name.startswith("sar2optical.")} - {None, source}:
        edges[source, target] += 1
  return edges


def dot_source() -> str:
  lines = ["digraph imports {", '  rankdir=BT; node [shape=box, fontname="Helvetica"]; edge [color=gray40];']
  lines += [f"  \"{wing}\";" for wing in WINGS]
  lines += [f'  "{low}" -> "{high}" [style=invis];' for low, high in itertools.pairwise(WINGS)]  # the stacking
  lines += [f'  "{source}" -> "{target}" [label={count}, constraint=false];'
            for (source, target), count in sorted(wing_imports().items())]
  return "\n".join([*lines, "}"]) + "\n"


def main(argv: list[str]) -> int:
  if argv[1:] == ["--check"]:
    return 0 if DOT.read_text() == dot_source() else 1
  DOT.write_text(dot_source())
  if shutil.which("dot"):
    subprocess.run(["dot", "-Tsvg", str(DOT), "-o", str(DOT.with_suffix(".svg"))], check=True)
  else:
    print("Graphviz's dot is not installed: wrote imports.dot only", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
