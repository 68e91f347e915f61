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
        assert reason in text.split('<section id="samples">')[1]
    assert "cannot be shown" in text
