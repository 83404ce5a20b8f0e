"""The import direction between restyle's layers (docs/architecture.md), checked with
``ast`` on every module: the core never imports a front end, and front ends import
each other only downwards:

    core  <  run  <  video  <  batch  <  api  <  {studio, evaluate front ends}  <  cli

A module-level or function-level ``from .cli import ...`` in batch fails here."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
graph = importlib.util.module_from_spec(_spec)
sys.modules["import_graph"] = graph  # its dataclasses look their module up
_spec.loader.exec_module(graph)

#: Front-end layers, lowest first; a front end may import only lower layers (and modules
#: of its own layer inside its own package, e.g. studio.app -> studio.jobs).
LAYERS = [
    ("run",),
    ("video",),
    ("batch",),
    ("api",),
    ("studio", "evaluate.bench", "evaluate.bench_batch", "evaluate.bench_frontier",
     "evaluate.compare"),
    ("cli", "__main__"),  # python -m restyle runs the command
]


def layer_of(module: str) -> int | None:
    """The front-end layer of ``restyle.x.y`` (its rank), or None for the core."""
    name = module.removeprefix("restyle.")
    for rank, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return rank
    return None


def group_of(module: str) -> str:
    """The front end a module belongs to: its package (studio, cli) or itself."""
    name = module.removeprefix("restyle.")
    for members in LAYERS:
        for m in members:
            if name == m or name.startswith(m + "."):
                return {"__main__": "cli"}.get(m, "evaluate" if m.startswith("evaluate.") else m)
    return name


def violations(edges) -> list[str]:
    bad = []
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if dst is None:
            continue  # anything may import the core
        where = f"{e.source}:{e.line} imports {e.target}"
        if src is None:
            bad.append(f"{where}: the core imports a front end")
        elif dst > src or (dst == src and group_of(e.source) != group_of(e.target)):
            bad.append(f"{where}: front ends import downwards only ({LAYERS})")
    return bad


EDGES = graph.imports(ROOT)


def test_core_and_front_ends_import_downwards_only():
    assert violations(EDGES) == []


def test_no_import_cycle_crosses_front_ends():
    for cycle in graph.cycles(EDGES):
        groups = {group_of(m) for m in cycle if layer_of(m) is not None}
        assert len(groups) <= 1, f"import cycle across front ends: {cycle}"


@pytest.mark.parametrize("module,line", [
    ("restyle/batch.py", "from .cli import sigterm_interrupts\n"),
    ("restyle/video.py", "from .api import transfer\n"),
    ("restyle/methods/gatys.py", "from ..run import request\n"),
    ("restyle/studio/jobs.py", "from ..evaluate.compare import main\n"),
])
def test_the_check_catches_an_upward_import(tmp_path, module, line):
    """A copy of the package with one import added in the wrong direction fails, at
    module level and inside a function."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "restyle", copy / "restyle",
                    ignore=shutil.ignore_patterns("__pycache__", "static", "assets"))
    target = copy / module
    text = target.read_text()
    target.write_text(text.replace("from __future__ import annotations\n",
                                   "from __future__ import annotations\n" + line, 1))
    assert violations(graph.imports(copy))
    target.write_text(text + "\n\ndef _late():\n    " + line)
    assert violations(graph.imports(copy))


def test_function_level_imports_are_the_lazy_kind_only():
    """Function-level imports of restyle's own modules: the registry's built-in methods
    (loaded on first use), optional extras and plugins that would import each other at
    load time. A front end adds none (the studio's is FastAPI's extra, loaded only for
    `restyle studio`)."""
    lazy = [e for e in EDGES if e.lazy and layer_of(e.source) is not None]
    allowed = {("restyle.cli.tools", "restyle.studio"),
               ("restyle.studio.server", "restyle.studio.app")}
    extra = [e for e in lazy if (e.source, e.target) not in allowed
             and not e.source.startswith("restyle.evaluate.")]
    assert extra == [], extra
