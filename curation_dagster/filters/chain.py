"""The one explicit mapping from spec filter kinds to filter classes."""

from __future__ import annotations

from typing import Any

from curation_dagster.filters.base import Filter, FilterChain
from curation_dagster.filters.media import AudioSilence, Duration, ImageBlank, ImageSize
from curation_dagster.filters.model import TextClassifier
from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import FilterSpec

FILTERS: dict[str, type[Filter]] = {
    "text_length": TextLength,
    "blocklist": Blocklist,
    "text_classifier": TextClassifier,
    "image_size": ImageSize,
    "image_blank": ImageBlank,
    "duration": Duration,
    "audio_silence": AudioSilence,
}


def _build(settings: Any, runtime: ModelRuntime | None) -> Filter:
    cls: Any = FILTERS[settings.kind]
    return cls(settings, runtime) if cls.needs_accelerator else cls(settings)


def build_chain(spec: FilterSpec, runtime: ModelRuntime | None = None) -> FilterChain:
    """The filter chain a spec describes, per modality, in the spec's order. Filters that run models
    use `runtime`; they load nothing until they first score a batch."""
    return FilterChain(
        {
            modality: [_build(item, runtime) for item in getattr(spec, modality)]
            for modality in ("text", "image", "audio", "video")
        }
    )
