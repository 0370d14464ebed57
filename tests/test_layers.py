"""The package's architecture, read from its code: layers import only downwards, no circles.

Each subpackage of abcweb states its layer in its `__init__` docstring ("Layer N: ..."); the
modules directly in abcweb/ (the public names and the command line) sit on top. Every import
counts, the ones inside functions too: a lazy import is still a dependency, only a hidden one.
Imports under `if TYPE_CHECKING:` are left out, since they never run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "abcweb"
LAYER = re.compile(r"^Layer (\d+)\b", re.M)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    return skip


def imports_of(name: str) -> set[str]:
    """The package's modules that `name` imports, anywhere in its code."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when there is one.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # `import abcweb.music.tunes.x` -> the module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def layers() -> dict[str, int]:
    """Each subpackage's layer, from its docstring; the package's own modules on top."""
    found = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name != "abcweb":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            m = LAYER.search(doc)
            assert m, f"{path.relative_to(ROOT)}: its docstring must say 'Layer N: ...'"
            found[name] = int(m.group(1))
    return found


def layer_of(name: str, known: dict[str, int]) -> tuple[str, int]:
    """(the subpackage a module belongs to, its layer); abcweb's own modules are on top."""
    for package in sorted(known, key=len, reverse=True):
        if name == package or name.startswith(package + "."):
            return package, known[package]
    return "abcweb", max(known.values(), default=0) + 1


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    """The checks below are only as good as this reading of imports."""
    assert "abcweb.sampling.loop" in GRAPH["abcweb.sampling.sampler"]
    # a lazy import, inside a function
    assert "abcweb.sampling.sample_worker" in GRAPH["abcweb.sampling.sampler"]
    assert "abcweb.music.facts" in GRAPH["abcweb.sampling.drafts"]


def test_there_are_no_import_circles():
    assert cycles() == []


def test_every_import_goes_down_the_layers():
    known = layers()
    assert len(set(known.values())) >= 4, known  # a stack, not one flat layer
    wrong = []
    for name, targets in GRAPH.items():
        here, mine = layer_of(name, known)
        for t in targets:
            there, theirs = layer_of(t, known)
            if there != here and theirs >= mine:
                wrong.append(f"{name} (layer {mine}) imports {t} (layer {theirs})")
    assert wrong == []


def test_the_library_never_imports_the_page():
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module or ""]
            else:
                continue
            assert not any(m == "views" or m.startswith("views.") or m == "streamlit_app"
                           for m in mods), name


@pytest.mark.parametrize("layer", sorted(layers()))
def test_each_layer_says_what_it_holds_and_may_import(layer):
    doc = ast.get_docstring(ast.parse(MODULES[layer].read_text()))
    assert len(doc.split()) >= 25, layer  # a paragraph, not a label
    assert "import" in doc, f"{layer}: its docstring says what it may import"
