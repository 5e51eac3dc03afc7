"""The package's shape: data flows one way, so no module imports one that imports it back, and
the views (pages, components) read through the Store, never through the writer or the server."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "dashboard"
#: What a view must not import: the ingestor (the writer), the runner, the CLI, the server module.
NOT_FOR_VIEWS = {"dashboard.ingest", "dashboard.runner", "dashboard.execution", "dashboard.cli", "dashboard.app",
                 "dashboard.downloads", "dashboard.services"}
VIEWS = ("dashboard.pages", "dashboard.components")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, skip_served_block: bool = False) -> set[str]:
    """The dashboard modules `path` imports, anywhere in it (in functions too). With
    `skip_served_block`, not those under `if __name__...:`, where a page module served by plain
    `panel serve` starts the process's services."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    if skip_served_block:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
                skipped |= {id(inner) for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        for imported in imports(path):
            graph.add_edge(module_name(path), imported)
    # A package's __init__ importing its own modules is how a package hands names on, not a loop.
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if b.startswith(a + ".")])
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_views_read_through_the_store_not_the_writer_or_the_server():
    offending = {}
    for path in PACKAGE.rglob("*.py"):
        if module_name(path).startswith(VIEWS):
            bad = imports(path, skip_served_block=True) & NOT_FOR_VIEWS
            if bad:
                offending[module_name(path)] = sorted(bad)
    assert offending == {}


def test_no_two_test_modules_share_a_name():
    """pytest imports test modules by their base name: two of one name stop the whole suite's collection."""
    names = Counter(path.name for path in Path(__file__).parent.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
