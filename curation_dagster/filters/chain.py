"""The one explicit mapping from spec filter kinds to filter classes."""

from __future__ import annotations

import inspect
from typing import Any

from curation_dagster.filters.base import Filter, FilterChain
from curation_dagster.filters.decontamination import Decontamination
from curation_dagster.filters.language import Language
from curation_dagster.filters.media import AudioSilence, Duration, ImageBlank, ImageSize
from curation_dagster.filters.model import TextClassifier
from curation_dagster.filters.pii import PII
from curation_dagster.filters.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from curation_dagster.filters.register import Register
from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.filters.toxicity import Toxicity
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import FilterSpec

FILTERS: dict[str, type[Filter]] = {
    "text_length": TextLength,
    "blocklist": Blocklist,
    "text_classifier": TextClassifier,
    "language": Language,
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "c4_quality": C4Quality,
    "fineweb_quality": FineWebQuality,
    "toxicity": Toxicity,
    "register": Register,
    "pii": PII,
    "decontamination": Decontamination,
    "image_size": ImageSize,
    "image_blank": ImageBlank,
    "duration": Duration,
    "audio_silence": AudioSilence,
}


def _build(settings: Any, runtime: ModelRuntime | None) -> Filter:
    """A filter from its settings; classes whose constructor takes a `runtime` get the chain's."""
    cls: Any = FILTERS[settings.kind]
    takes_runtime = "runtime" in inspect.signature(cls).parameters
    return cls(settings, runtime) if takes_runtime else cls(settings)


def build_chain(spec: FilterSpec, runtime: ModelRuntime | None = None) -> FilterChain:
    """The filter chain a spec describes, per modality, in the spec's order. Filters that run models
    use `runtime`; they load nothing until they first score a batch."""
    return FilterChain(
        {
            modality: [_build(item, runtime) for item in getattr(spec, modality)]
            for modality in ("text", "image", "audio", "video")
        }
    )
