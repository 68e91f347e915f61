"""Tests of curation_dagster/report/page.py: the data card opens anywhere without the lake, and long reason
codes wrap inside their boxes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from curation_dagster.io.lake import Lake
from curation_dagster.report import build_report
from curation_dagster.schema import mark_rejected
from tests.engine.report.card_fixtures import SPEC, Page, chromium_executable, text_items

LONG_CODE = "filter.text_length.too_long_for_the_model_context_window_of_every_model_we_train"


def test_the_page_is_self_contained(built: tuple[Lake, str]) -> None:
    page = Page(built[1])
    assert all(image["src"].startswith("data:image/png;base64,") for image in page.images)
    assert "http://" not in built[1] and "https://" not in built[1]


def test_codes_and_tile_texts_may_break_anywhere(built: tuple[Lake, str]) -> None:
    style = built[1].split("<style>")[1].split("</style>")[0]
    rules = {
        selector.strip(): body
        for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", style)
        for selector in selectors.split(",")
    }
    for selector in ("code", ".tile span", "td"):
        assert "overflow-wrap: anywhere" in rules[selector]


def long_code_card(folder: Path) -> Path:
    """A data card whose one rejected item has `LONG_CODE` as its reason."""
    lake = Lake(folder / "lake")
    lake.write_table(lake.path("mm", "filtered", "x.jsonl"), text_items(1))
    rejected = mark_rejected(text_items(1), "filtered", [LONG_CODE], ["12,000 words > 8,000"])
    lake.write_table(lake.path("mm", "filtered", "x.jsonl", rejected=True), rejected)
    return Path(build_report(SPEC, lake).path)


def test_a_long_reason_code_stays_inside_its_tile_in_chromium(tmp_path: Path) -> None:
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no chromium executable: install it (apt-get install chromium) to run the browser check")
    from playwright.sync_api import sync_playwright

    card = long_code_card(tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(card.as_uri())
            shown = page.locator("#samples .reason code").inner_text()
            overflowing = page.evaluate(
                """() => [...document.querySelectorAll('.tile, .tile *')]
                    .filter(e => getComputedStyle(e).display !== 'inline' && e.scrollWidth > e.clientWidth)
                    .map(e => e.className)"""
            )
        finally:
            browser.close()

    assert shown.replace("\n", "") == LONG_CODE
    assert overflowing == []
