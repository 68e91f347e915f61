"""Import hygiene: the definitions module stays light, and the engine under `curation_dagster/` never needs Dagster."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "curation_dagster"
HEAVY = ("torch", "transformers", "open_clip", "av", "pynvml", "cupy")
"""Packages that load models or touch a GPU; the code server and the daemon must not import them."""
DAGSTER_ALLOWED = {"definitions.py", "cli.py"}
"""Modules at the package root that are the Dagster entry points; `cli.py` imports Dagster inside commands."""

PROBE = """
import json, sys
import curation_dagster.definitions
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print(json.dumps(heavy))
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


def test_importing_definitions_loads_no_model_or_gpu_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


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
