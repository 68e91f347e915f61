"""Tests of curation_dagster/report/samples.py: tiles of kept and rejected items with their previews."""

from __future__ import annotations

from curation_dagster.io.lake import Lake
from tests.engine.report.card_fixtures import PNG_SIGNATURE, Page, png_of


def test_samples_show_thumbnails_waveforms_first_frames_and_reasons(built: tuple[Lake, str]) -> None:
    text = built[1]
    samples = [image for image in Page(text).images if image["section"] == "samples"]
    alts = [image["alt"] for image in samples]

    assert alts.count("waveform") >= 1
    assert alts.count("first frame") >= 1
    assert alts.count("thumbnail") >= 4
    assert all(png_of(image["src"]).startswith(PNG_SIGNATURE) for image in samples)
    for reason in (
        "filter.image_blank.blank",
        "raw.image_decode",
        "filter.audio_silence.silent",
        "dedup.exact",
    ):
        assert reason in text.split('<section id="samples">')[1].replace("<wbr>", "")
    assert "cannot be shown" in text


def synthetic_items(lake: Lake) -> dict[str, list[str]]:
    """Synthetic items of the final training set: id → parent ids."""
    rows = lake.duckdb("mm").sql("SELECT id, parent_ids FROM synthesized WHERE synthetic").fetchall()
    return {str(item): list(parents) for item, parents in rows}


def test_synthetic_items_and_only_they_carry_a_badge_naming_recipe_and_parents(
    built: tuple[Lake, str],
) -> None:
    lake, text = built
    synthetic = synthetic_items(lake)
    kept = {str(row[0]) for row in lake.duckdb("mm").sql("SELECT id FROM synthesized").fetchall()}
    tiles = Page(text).tiles

    assert synthetic and kept <= set(tiles)  # every kept item of the tiny version is shown
    assert {item for item, spans in tiles.items() if "synthetic" in spans} == set(synthetic)
    for item, parents in synthetic.items():
        tile = text.split(f'data-id="{item}">')[1].split("</div>")[0]
        assert '<span class="synthetic">synthetic: <code>' in tile
        assert all(parent in tile for parent in parents)


def test_kept_counts_say_how_many_items_are_synthetic(built: tuple[Lake, str]) -> None:
    lake, text = built
    by_modality = dict(
        lake.duckdb("mm")
        .sql("SELECT modality, count(*) FROM synthesized WHERE synthetic GROUP BY 1")
        .fetchall()
    )

    assert f"12 are in the final training set, {sum(by_modality.values())} of them synthetic." in text
    assert f"kept (final training set: 4 items, {by_modality['text']} of them synthetic)" in text
