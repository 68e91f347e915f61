"""Import hygiene: the definitions module stays light, the engine under `curation_dagster/` never needs
Dagster, and no module of the engine imports one that imports it back (at module level or inside a
function)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "curation_dagster"
HEAVY = ("torch", "transformers", "open_clip", "av", "pynvml", "cupy")
"""Packages that load models or touch a GPU; the code server and the daemon must not import them."""
DAGSTER_ALLOWED = {"definitions.py"}
"""The engine's one Dagster entry point; the rest of Dagster lives in `assets/` and `resources/`."""

PROBE = """
import gc, json, sys
import curation_dagster.definitions
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print(json.dumps({{"heavy": heavy, "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}}))
"""


def dagster_imports(source: Path) -> list[str]:
    """`line: statement` for every import of dagster or a dagster_* package in `source`, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), filename=str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "dagster" or top.startswith("dagster_"):
                found.append(f"{node.lineno}: {name}")
    return found


def definitions_probe() -> dict[str, Any]:
    """What a fresh interpreter holds after importing the definitions module."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return probe


def test_importing_definitions_loads_no_model_or_gpu_library() -> None:
    assert definitions_probe()["heavy"] == []


def test_definitions_leave_what_they_loaded_to_the_process() -> None:
    """What loading the definitions made is frozen out of the cyclic collector's reach: full collections
    in a run and the interpreter's exit (once about 0.4 s in every Dagster process) skip it."""
    probe = definitions_probe()
    # Dagster, pyarrow and the asset graph are hundreds of thousands of objects; few are left tracked.
    assert probe["frozen"] > 100_000
    assert probe["tracked"] < probe["frozen"] / 20


def test_engine_modules_do_not_import_dagster() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert sources, f"no modules found under {PACKAGE}"
    offenders = {
        str(source.relative_to(REPO)): imports
        for source in sources
        if source.relative_to(PACKAGE).as_posix() not in DAGSTER_ALLOWED
        and (imports := dagster_imports(source))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import dagster", ["1: dagster"]),
        ("import os, dagster.core as core", ["1: dagster.core"]),
        ("from dagster import asset", ["1: dagster"]),
        ("from dagster_webserver import app", ["1: dagster_webserver"]),
        ("def f():\n    if True:\n        from dagster._core import x", ["3: dagster._core"]),
        ("from .dagster import helper\nimport dagsterish", []),
    ],
)
def test_dagster_import_scan_finds_imports_at_any_depth(
    tmp_path: Path, code: str, expected: list[str]
) -> None:
    source = tmp_path / "module.py"
    source.write_text(code + "\n", encoding="utf-8")
    assert dagster_imports(source) == expected


def module_name(source: Path, root: Path = REPO) -> str:
    parts = list(source.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports(source: Path, modules: set[str], root: Path = REPO) -> set[str]:
    """The engine modules `source` imports, at module level or inside a function (not for type checking
    only): `from a.b import c` counts as importing `a.b.c` when that is a module, else `a.b`."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt] | list[ast.AST]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield from (f"{node.module}.{alias.name}" for alias in node.names)
                yield node.module
            else:
                yield from visit(list(ast.iter_child_nodes(node)))

    own = module_name(source, root)
    for name in visit(ast.parse(source.read_text(encoding="utf-8")).body):
        parts = name.split(".")
        for length in range(len(parts), 0, -1):
            candidate = ".".join(parts[:length])
            if candidate in modules:
                if candidate != own:
                    found.add(candidate)
                break
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_engine_module_imports_one_that_imports_it_back() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(source) for source in sources}
    graph = {module_name(source): engine_imports(source, modules) for source in sources}
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n")
    sources = sorted(package.glob("*.py"))
    modules = {module_name(source, tmp_path) for source in sources}

    graph = {module_name(source, tmp_path): engine_imports(source, modules, tmp_path) for source in sources}

    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}, "pkg.d": set()}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]
