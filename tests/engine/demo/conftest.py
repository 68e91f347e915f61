"""Shared fixture for the demo generator tests: one generated landing zone, read but never changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.demo import generate_demo_landing


@pytest.fixture(scope="package")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated demo landing zone shared by the read-only tests of this package."""
    root = tmp_path_factory.mktemp("landing")
    generate_demo_landing(root)
    return root
