"""Tests of curation_dagster/report/sections.py: scores, duplicate clusters, language and register."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.report import build_report
from curation_dagster.schema import RAW_SCHEMA, mark_rejected
from tests.engine.report.card_fixtures import PNG_SIGNATURE, SPEC, Page, png_of, text_items


def section(page: str, key: str) -> str:
    """The HTML of one section of a data card."""
    return page.split(f'<section id="{key}">')[1].split("</section>")[0]


def test_scores_have_a_histogram_per_numeric_filter_column(built: tuple[Lake, str]) -> None:
    alts = {image["alt"] for image in Page(built[1]).images if image["section"] == "scores"}
    assert {"histogram of text_words", "histogram of grey_std", "histogram of silence_ratio"} <= alts
    assert "histogram of dup_similarity" not in alts


def test_duplicate_clusters_count_the_kept_item_and_its_duplicates(built: tuple[Lake, str]) -> None:
    duplicates = built[1].split('<section id="duplicates">')[1].split("</section>")[0]
    assert "<td>2</td><td>2</td>" in duplicates  # two clusters of size 2 (one text, one image)


def test_without_language_columns_the_section_says_so(built: tuple[Lake, str]) -> None:
    language = built[1].split('<section id="language">')[1].split("</section>")[0]
    assert "No <code>lang</code> column" in language
    assert "No <code>formality</code> column" in language


def test_language_and_register_mix_are_counted_when_the_columns_exist(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    rows = [
        {"id": f"t{index}", "modality": "text", "text": "words", "uri": f"x#L{index}", "shard": "x.jsonl"}
        for index in range(4)
    ]
    table = pa.Table.from_pylist(rows, schema=RAW_SCHEMA)
    table = table.append_column("lang", pa.array(["en", "en", "fr", "de"]))
    table = table.append_column("formality", pa.array([0.9, 0.2, 0.7, 0.1]))
    lake.write_table(lake.path("mm", "filtered", "x.jsonl"), table.slice(0, 3))
    rejected = mark_rejected(table.slice(3), "filtered", ["filter.language.not_kept"], ["identified as de"])
    lake.write_table(lake.path("mm", "filtered", "x.jsonl", rejected=True), rejected)

    page = Path(build_report(SPEC, lake).path).read_text(encoding="utf-8")

    language = page.split('<section id="language">')[1].split("</section>")[0]
    assert "<tr><td>en</td><td>2</td><td>0</td></tr>" in language
    assert "<tr><td>de</td><td>0</td><td>1</td></tr>" in language
    assert "<tr><td>formal</td><td>2</td><td>0</td></tr>" in language
    assert "<tr><td>colloquial</td><td>1</td><td>1</td></tr>" in language
    plots = [image for image in Page(page).images if image["section"] == "language"]
    assert len(plots) == 3 and all(png_of(image["src"]).startswith(PNG_SIGNATURE) for image in plots)


def test_a_long_tail_is_named_in_the_histogram_caption(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lengths = [100 + (index * 397) % 401 for index in range(999)] + [1_000_000]
    lake.write_table(lake.path("mm", "filtered", "x.jsonl"), text_items(1000, text_chars=lengths))

    page = Path(build_report(SPEC, lake).path).read_text(encoding="utf-8")

    (image,) = [image for image in Page(page).images if image["alt"].startswith("histogram of text_chars")]
    note = "1 item above 500, counted in the hatched bar"
    assert image["alt"] == f"histogram of text_chars; {note}"
    assert f"<figcaption>text_chars<br>{note}</figcaption>" in section(page, "scores")


def test_a_score_with_a_single_value_is_a_sentence_instead_of_a_plot(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.write_table(lake.path("mm", "filtered", "x.jsonl"), text_items(4, pii_redacted=[0, 0, 0, 0]))

    page = Path(build_report(SPEC, lake).path).read_text(encoding="utf-8")

    assert "All 4 items have pii_redacted = 0." in section(page, "scores")
    assert not [image for image in Page(page).images if image["alt"].startswith("histogram of pii_redacted")]


def test_a_version_that_kept_nothing_has_a_sentence_instead_of_an_empty_funnel_plot(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    rejected = mark_rejected(text_items(3), "raw", ["raw.empty_text"] * 3, [None] * 3)
    lake.write_table(lake.path("mm", "raw", "x.jsonl", rejected=True), rejected)

    page = Path(build_report(SPEC, lake).path).read_text(encoding="utf-8")

    assert "No stage kept any item." in section(page, "funnel")
    alts = [image["alt"] for image in Page(page).images if image["section"] == "funnel"]
    assert alts == ["rejections by reason"]
