"""A tiny multimodal version run through every stage, small hand-made lakes, and a parser for the data
card's HTML."""

from __future__ import annotations

import base64
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import RAW_SCHEMA
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


def text_items(count: int, **columns: list[Any]) -> pa.Table:
    """`count` text items in the raw schema, with `columns` (name → values) added."""
    rows = [
        {"id": f"t{index}", "modality": "text", "text": "words", "uri": f"x#L{index}", "shard": "x.jsonl"}
        for index in range(count)
    ]
    table = pa.Table.from_pylist(rows, schema=RAW_SCHEMA)
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values))
    return table


def chromium_executable() -> str | None:
    """The system's Chromium, which the browser checks drive through Playwright."""
    for candidate in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class Page(HTMLParser):
    """The sections (id → whether it has an h2), images and sample tiles (id → classes of the spans in
    it) of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: dict[str, bool] = {}
        self.images: list[dict[str, str]] = []
        self.tiles: dict[str, list[str]] = {}
        self._section: str | None = None
        self._tile: str | None = None
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
        elif tag == "div" and attributes.get("class") == "tile":
            self._tile = attributes.get("data-id", "")
            self.tiles[self._tile] = []
        elif tag == "span" and self._tile is not None:
            self.tiles[self._tile].append(attributes.get("class", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._tile = None


def png_of(source: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix)
    return base64.b64decode(source[len(prefix) :])
