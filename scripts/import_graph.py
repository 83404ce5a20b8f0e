"""Measure restyle's import structure with ``ast`` (no module is imported).

    python scripts/import_graph.py [ROOT]

Prints: the import cycles (strongly connected components of the graph of imports between
restyle's own modules, function-level imports included), the function-level imports of
restyle's own modules, and the branches on a method's ``task``, ``style_kind`` or
``family`` outside ``restyle/methods/``. ``tests/test_architecture.py`` uses the same
functions to hold the import direction (docs/architecture.md).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

#: method attributes whose values front ends once branched on
METHOD_KINDS = ("task", "style_kind", "family")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "restyle.batch"
    target: str  # the imported restyle module, e.g. "restyle.cli"
    line: int
    lazy: bool  # inside a function (run when called, not when the module is imported)


def modules(root: Path) -> dict[str, Path]:
    """``{"restyle.x.y": path}`` for every module under ``root/restyle``."""
    out = {}
    for path in sorted((root / "restyle").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` names or lies in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(root: Path) -> list[Import]:
    """Every import of a restyle module by a restyle module."""
    known = modules(root)
    found = []
    for mod, path in known.items():
        if mod == "restyle":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        lazy_nodes = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy_nodes.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # "from . import x" names submodules; "from .m import f" the module m
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix
                           for a in node.names]
            for t in targets:
                if t.startswith("restyle."):
                    target = _resolve(t, known)
                    # the package itself ("from .. import __version__") is the public
                    # facade: Python runs it before any module of it, so it is no edge
                    if target and target not in (mod, "restyle"):
                        found.append(Import(mod, target, node.lineno, id(node) in lazy_nodes))
    return list(dict.fromkeys(found))  # one per statement and module imported


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), largest first."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=len, reverse=True)


def kind_branches(root: Path) -> list[tuple[str, int, str]]:
    """Comparisons on a method's task / style_kind / family outside restyle/methods/:
    ``m.task != "transfer"``, ``info["style_kind"] == "name"`` and the like."""
    out = []
    for mod, path in modules(root).items():
        if mod.startswith("restyle.methods"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            for side in [node.left, *node.comparators]:
                name = None
                if isinstance(side, ast.Attribute) and side.attr in METHOD_KINDS:
                    name = side.attr
                elif (isinstance(side, ast.Subscript) and isinstance(side.slice, ast.Constant)
                      and side.slice.value in METHOD_KINDS):
                    name = side.slice.value
                elif (isinstance(side, ast.Call) and getattr(side.func, "id", "") == "getattr"
                      and len(side.args) > 1 and isinstance(side.args[1], ast.Constant)
                      and side.args[1].value in METHOD_KINDS):
                    name = side.args[1].value
                if name:
                    out.append((mod, node.lineno, name))
                    break
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    edges = imports(root)
    comps = cycles(edges)
    lazy = [e for e in edges if e.lazy]
    print(f"modules: {len(modules(root))}, imports between them: {len(edges)} "
          f"({len(lazy)} function-level; one per statement and module imported)")
    print(f"import cycles: {len(comps)}; sizes {[len(c) for c in comps]}")
    for c in comps:
        print("  cycle:", ", ".join(m.removeprefix("restyle.") for c_ in [c] for m in c_))
    by_module: dict[str, int] = {}
    for e in lazy:
        by_module[e.source] = by_module.get(e.source, 0) + 1
    print("function-level imports by module:",
          ", ".join(f"{m.removeprefix('restyle.')} {n}" for m, n in
                    sorted(by_module.items(), key=lambda kv: -kv[1])))
    branches = kind_branches(root)
    print(f"branches on task/style_kind/family outside methods/: {len(branches)}")
    for mod, line, name in branches:
        print(f"  {mod}:{line} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
