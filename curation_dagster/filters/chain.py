"""The one explicit mapping from spec filter kinds to filter classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curation_dagster.filters.base import Filter, FilterChain
from curation_dagster.filters.media import AudioSilence, Duration, ImageBlank, ImageSize
from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.spec import FilterSpec

FILTERS: dict[str, Callable[[Any], Filter]] = {
    "text_length": TextLength,
    "blocklist": Blocklist,
    "image_size": ImageSize,
    "image_blank": ImageBlank,
    "duration": Duration,
    "audio_silence": AudioSilence,
}


def build_chain(spec: FilterSpec) -> FilterChain:
    """The filter chain a spec describes, per modality, in the spec's order."""
    return FilterChain(
        {
            modality: [FILTERS[item.kind](item) for item in getattr(spec, modality)]
            for modality in ("text", "image", "audio", "video")
        }
    )
