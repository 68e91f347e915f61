"""Tests of curation_dagster/report/sections.py: scores, duplicate clusters, language and register."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.report import build_report
from curation_dagster.schema import RAW_SCHEMA, mark_rejected
from tests.engine.report.card_fixtures import PNG_SIGNATURE, SPEC, Page, png_of


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
    rejected = mark_rejected(table.slice(3), "filtered", ["lang.not_kept"], ["identified as de"])
    lake.write_table(lake.path("mm", "filtered", "x.jsonl", rejected=True), rejected)

    page = Path(build_report(SPEC, lake).path).read_text(encoding="utf-8")

    language = page.split('<section id="language">')[1].split("</section>")[0]
    assert "<tr><td>en</td><td>2</td><td>0</td></tr>" in language
    assert "<tr><td>de</td><td>0</td><td>1</td></tr>" in language
    assert "<tr><td>formal</td><td>2</td><td>0</td></tr>" in language
    assert "<tr><td>colloquial</td><td>1</td><td>1</td></tr>" in language
    plots = [image for image in Page(page).images if image["section"] == "language"]
    assert len(plots) == 3 and all(png_of(image["src"]).startswith(PNG_SIGNATURE) for image in plots)
