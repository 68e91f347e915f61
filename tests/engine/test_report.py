"""Tests of curation_dagster/report.py: the HTML data card of a tiny multimodal version."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import STAGES, run_stage
from curation_dagster.report import SECTIONS, build_report
from curation_dagster.schema import RAW_SCHEMA, mark_rejected
from curation_dagster.spec import parse_spec
from tests.media_fixtures import MULTIMODAL_SPEC, write_multimodal_landing

SPEC = parse_spec(MULTIMODAL_SPEC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The sections (id → whether it has an h2) and images of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: dict[str, bool] = {}
        self.images: list[dict[str, str]] = []
        self._section: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "section":
            self._section = attributes["id"]
            self.sections[self._section] = False
        elif tag == "h2" and self._section is not None:
            self.sections[self._section] = True
        elif tag == "img":
            self.images.append({**attributes, "section": self._section or ""})


def png_of(source: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix)
    return base64.b64decode(source[len(prefix) :])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str]:
    folder = tmp_path_factory.mktemp("report")
    landing = write_multimodal_landing(folder / "landing")
    lake = Lake(folder / "lake")
    for shard in ("text.jsonl", "media"):
        for stage in STAGES:
            run_stage(SPEC, lake, stage, shard, landing / shard)
    report = build_report(SPEC, lake)
    return lake, Path(report.path).read_text(encoding="utf-8")


def test_the_card_is_written_into_the_lake(built: tuple[Lake, str]) -> None:
    lake, _ = built
    assert (Path(lake.root) / "mm" / "report" / "index.html").exists()


def test_every_section_is_present_with_a_heading(built: tuple[Lake, str]) -> None:
    page = Page(built[1])

    assert list(page.sections) == list(SECTIONS)
    assert all(page.sections.values())


def test_every_plot_is_a_non_empty_png_data_uri(built: tuple[Lake, str]) -> None:
    plots = [image for image in Page(built[1]).images if image["class"] == "plot"]

    assert {image["section"] for image in plots} == {
        "funnel",
        "scores",
        "duplicates",
        "selection",
        "synthetic",
    }
    for image in plots:
        data = png_of(image["src"])
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.width > 100 and picture.height > 100


def test_the_page_is_self_contained(built: tuple[Lake, str]) -> None:
    page = Page(built[1])
    assert all(image["src"].startswith("data:image/png;base64,") for image in page.images)
    assert "http://" not in built[1] and "https://" not in built[1]


def test_scores_have_a_histogram_per_numeric_filter_column(built: tuple[Lake, str]) -> None:
    alts = {image["alt"] for image in Page(built[1]).images if image["section"] == "scores"}
    assert {"histogram of text_words", "histogram of grey_std", "histogram of silence_ratio"} <= alts
    assert "histogram of dup_similarity" not in alts


def test_funnel_counts_match_the_lake(tmp_path: Path) -> None:
    landing = write_multimodal_landing(tmp_path / "landing")
    lake = Lake(tmp_path / "lake")
    for shard in ("text.jsonl", "media"):
        for stage in STAGES:
            run_stage(SPEC, lake, stage, shard, landing / shard)

    report = build_report(SPEC, lake)

    rows = {row.stage: row for row in report.funnel}
    assert (rows["raw"].kept_total, rows["raw"].rejected_total) == (11, 2)
    assert rows["filtered"].rejected == {"text": 1, "image": 1, "audio": 1}
    assert rows["synthesized"].kept == {"text": 4, "image": 4, "audio": 2, "video": 2}
    assert report.rejections["dedup.exact"] == 2
    assert "| synthesized | 4 | 4 | 2 | 2 | 12 | 0 |" in report.funnel_markdown()


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


def test_an_empty_version_still_gets_every_section(tmp_path: Path) -> None:
    page = Page(Path(build_report(SPEC, Lake(tmp_path / "lake")).path).read_text(encoding="utf-8"))
    assert list(page.sections) == list(SECTIONS)


def test_loading_the_definitions_does_not_import_matplotlib() -> None:
    probe = "import sys, curation_dagster.definitions; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
