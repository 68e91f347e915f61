"""The layout rules a newcomer can rely on: no module of the engine, the Dagster layer or the resources over
600 lines, no function over 80, so every stage's logic reads in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("curation_dagster", "assets", "resources")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def sources() -> list[Path]:
    return sorted(path for folder in FOLDERS for path in (REPO / folder).rglob("*.py"))


def long_functions(source: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`name (lines)` of every function or method in `source` longer than `limit` lines."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(source.relative_to(REPO)): lines
        for source in sources()
        if (lines := len(source.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_80_lines() -> None:
    long = {str(source.relative_to(REPO)): found for source in sources() if (found := long_functions(source))}
    assert long == {}


def test_the_function_length_check_measures_a_function(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        "def short():\n    return 1\n\n\nclass C:\n    def long(self):\n" + "        x = 1\n" * 9
    )
    assert long_functions(source, limit=5) == ["long (10)"]
