"""Imports run downward: the library's import graph is acyclic, keeps the package rules
below, and is the graph docs/architecture.md shows (scripts/import_graph.py)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
ig = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ig)

# Package -> the library packages/modules it may import besides itself (prefixes of
# `absolute_zero.`). The sandbox is a general executor; the method's rules (tasks) sit on
# it; models know nothing of training, sampling or the method.
ALLOWED = {
    "sandbox": (),
    "tasks": ("sandbox",),
    "evaluation": ("tasks", "sandbox"),
    # hf_export writes the tokenizer too; GGUF files are read by one parser (gguf_file)
    "models": ("tokenizers", "tokenizer_export", "gguf_file"),
    "sampling": ("models", "sharding"),
}


@pytest.fixture(scope="module")
def graph():
  # In a fresh interpreter: late in the full suite, `ast.parse` in this process once raised
  # "SystemError: AST constructor recursion depth mismatch" (CPython 3.11's AST converter
  # keeps its recursion count per interpreter, and other threads were alive).
  out = subprocess.run(
      [sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--json"],
      capture_output=True,
      text=True,
      check=True,
      timeout=120,
  ).stdout
  return {m: set(d) for m, d in json.loads(out).items()}


def _short(module):
  return module.removeprefix("absolute_zero.")


def test_the_import_graph_is_acyclic_and_layered(graph):
  assert ig.find_cycle(graph) is None
  layer = ig.layers(graph)
  for module, deps in graph.items():
    for dep in deps:
      assert layer[dep] < layer[module], (module, dep)


def test_package_rules(graph):
  for module, deps in graph.items():
    package = _short(module).split(".")[0]
    if package not in ALLOWED:
      continue
    for dep in deps:
      top = _short(dep).split(".")[0]
      assert top == package or top in ALLOWED[package], f"{module} imports {dep}"


def test_only_metrics_plot_reaches_into_selfplay_from_outside(graph):
  for module, deps in graph.items():
    if _short(module).startswith("selfplay") or _short(module) == "metrics_plot":
      continue
    assert not [d for d in deps if _short(d).startswith("selfplay")], module


def test_the_library_never_imports_entry_points_or_tests():
  for path in (ROOT / "absolute_zero").rglob("*.py"):
    text = path.read_text()
    for bad in ("import experiments", "from experiments", "from tests", "import tests"):
      assert bad not in text, (path, bad)


def test_the_graph_finder_sees_cycles_and_deferred_imports(graph):
  """The checker itself: a planted cycle is found, and a function-level import counts."""
  assert ig.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  with pytest.raises(ValueError, match="import cycle"):
    ig.layers({"a": {"b"}, "b": {"a"}})
  # metrics imports distributed inside a function only (JAX-free module import).
  assert "absolute_zero.distributed" in graph["absolute_zero.metrics"]


def test_architecture_doc_shows_this_graph(graph):
  doc = ig.DOC.read_text()
  assert ig.BEGIN in doc and ig.END in doc
  shown = doc[doc.index(ig.BEGIN) : doc.index(ig.END) + len(ig.END) + 1]
  assert shown == ig.markdown(graph), (
      "docs/architecture.md's import graph is out of date: run "
      "`python scripts/import_graph.py --write`"
  )


def _readme_rows():
  """README's layout table: row index per library path named in its first column."""
  text = (ROOT / "README.md").read_text()
  table = text[text.index("## Layout") :].split("\n## ")[0]
  rows = {}
  for index, line in enumerate(l for l in table.splitlines() if l.startswith("| `")):
    first = line.split("|")[1]
    names = [n for n in first.split("`") if n.strip(" ,")]
    base = ""
    for name in names:
      if name.startswith("absolute_zero/"):
        base = "absolute_zero/"
        name = name[len(base) :]
      if base:
        rows[name.rstrip("/").removesuffix(".py")] = index
  return rows


def test_readme_layout_lists_every_package_bottom_up(graph):
  """Every package and top-level module has a row, and rows only import from rows above."""
  rows = _readme_rows()

  def row(module):
    short = _short(module)
    return rows.get(short.split(".")[0]) if short != "absolute_zero" else -1

  for module in graph:
    assert row(module) is not None, f"README's layout table has no row for {module}"
  for module, deps in graph.items():
    for dep in deps:
      assert row(dep) <= row(module), f"README: {module} (row {row(module)}) imports {dep}"


def test_no_two_library_modules_share_a_name():
  names = {}
  for path in (ROOT / "absolute_zero").rglob("*.py"):
    if path.name != "__init__.py":
      names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
  assert not {n: p for n, p in names.items() if len(p) > 1}
