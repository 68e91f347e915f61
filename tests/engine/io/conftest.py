"""Fixtures of the landing-reader tests: a landing zone, and a folder beside it that no reader may read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.landing_fixtures import write_lines
from tests.media_fixtures import png_bytes


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the landing zone holding a secret the readers must never read."""
    root = tmp_path / "outside"
    root.mkdir()
    write_lines(root / "secret.jsonl", b'{"text": "the secret"}')
    (root / "secret.png").write_bytes(png_bytes())
    return root
