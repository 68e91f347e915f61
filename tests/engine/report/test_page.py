"""Tests of curation_dagster/report/page.py: the data card opens anywhere without the lake."""

from __future__ import annotations

from curation_dagster.io.lake import Lake
from tests.engine.report.card_fixtures import Page


def test_the_page_is_self_contained(built: tuple[Lake, str]) -> None:
    page = Page(built[1])
    assert all(image["src"].startswith("data:image/png;base64,") for image in page.images)
    assert "http://" not in built[1] and "https://" not in built[1]
