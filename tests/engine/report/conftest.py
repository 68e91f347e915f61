"""The data card of the tiny multimodal version, built once for all report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.io.lake import Lake
from curation_dagster.report import build_report
from tests.engine.report.card_fixtures import SPEC, run_multimodal_version


@pytest.fixture(scope="package")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str]:
    """The lake and the text of its data card."""
    lake = run_multimodal_version(tmp_path_factory.mktemp("report"))
    report = build_report(SPEC, lake)
    return lake, Path(report.path).read_text(encoding="utf-8")
