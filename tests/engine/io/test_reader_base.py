"""Tests of curation_dagster/io/reader_base.py: the settings and pieces the landing readers share."""

from __future__ import annotations

from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.validate import DEFAULT_MEDIA_LIMITS
from curation_dagster.spec import RawSettings


def test_reader_defaults_are_the_spec_defaults() -> None:
    spec, reader = RawSettings(), ReaderSettings()
    assert (reader.max_inline_bytes, reader.max_line_bytes, reader.max_item_bytes) == (
        spec.max_inline_bytes,
        spec.max_line_bytes,
        spec.max_item_bytes,
    )
    assert DEFAULT_MEDIA_LIMITS.max_image_pixels == spec.max_image_pixels
