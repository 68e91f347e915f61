"""Tests of curation_dagster/report/card.py: where the data card goes, its sections and its funnel."""

from __future__ import annotations

from pathlib import Path

from curation_dagster.io.lake import Lake
from curation_dagster.report import SECTIONS, build_report
from tests.engine.report.card_fixtures import SPEC, Page, run_multimodal_version


def test_the_card_is_written_into_the_lake(built: tuple[Lake, str]) -> None:
    lake, _ = built
    assert (Path(lake.root) / "mm" / "report" / "index.html").exists()


def test_every_section_is_present_with_a_heading(built: tuple[Lake, str]) -> None:
    page = Page(built[1])

    assert list(page.sections) == list(SECTIONS)
    assert all(page.sections.values())


def test_funnel_counts_match_the_lake(tmp_path: Path) -> None:
    lake = run_multimodal_version(tmp_path)

    report = build_report(SPEC, lake)

    rows = {row.stage: row for row in report.funnel}
    assert (rows["raw"].kept_total, rows["raw"].rejected_total) == (11, 2)
    assert rows["filtered"].rejected == {"text": 1, "image": 1, "audio": 1}
    assert rows["synthesized"].kept == {"text": 4, "image": 4, "audio": 2, "video": 2}
    assert report.rejections["dedup.exact"] == 2
    assert "| synthesized | 4 | 4 | 2 | 2 | 12 | 0 |" in report.funnel_markdown()


def test_an_empty_version_still_gets_every_section(tmp_path: Path) -> None:
    page = Page(Path(build_report(SPEC, Lake(tmp_path / "lake")).path).read_text(encoding="utf-8"))
    assert list(page.sections) == list(SECTIONS)
