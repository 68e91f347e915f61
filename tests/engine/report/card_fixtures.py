"""A tiny multimodal version run through every stage, and a parser for the data card's HTML."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec
from curation_dagster.stages import STAGES
from tests.media_fixtures import MULTIMODAL_SPEC, write_multimodal_landing

SPEC = parse_spec(MULTIMODAL_SPEC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_multimodal_version(folder: Path) -> Lake:
    """A lake under `folder` with both multimodal landing shards run through every stage."""
    landing = write_multimodal_landing(folder / "landing")
    lake = Lake(folder / "lake")
    for shard in ("text.jsonl", "media"):
        for stage in STAGES:
            run_stage(SPEC, lake, stage, shard, landing / shard)
    return lake


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
