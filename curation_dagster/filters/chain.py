"""The one explicit mapping from spec filter kinds to filter classes."""

from __future__ import annotations

import inspect
from typing import Any

from curation_dagster.filters.base import Filter, FilterChain
from curation_dagster.filters.clip import Aesthetic, ClipScore, Nsfw
from curation_dagster.filters.context import FilterContext
from curation_dagster.filters.decontamination import Decontamination
from curation_dagster.filters.language import Language
from curation_dagster.filters.media import (
    AudioQuality,
    AudioSilence,
    Duration,
    ImageBlank,
    ImageBlur,
    ImageSize,
    VideoMotion,
    VideoQuality,
)
from curation_dagster.filters.model import TextClassifier
from curation_dagster.filters.pii import PII
from curation_dagster.filters.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from curation_dagster.filters.register import Register
from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.filters.toxicity import Toxicity
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import FilterSettings

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
    "clip_score": ClipScore,
    "aesthetic": Aesthetic,
    "nsfw": Nsfw,
    "duration": Duration,
    "audio_silence": AudioSilence,
    "image_blur": ImageBlur,
    "audio_quality": AudioQuality,
    "video_quality": VideoQuality,
    "video_motion": VideoMotion,
}


def _build(settings: Any, runtime: ModelRuntime | None, context: FilterContext) -> Filter:
    """A filter from its settings; classes whose constructor takes a `runtime` or a `context` get the
    chain's."""
    cls: Any = FILTERS[settings.kind]
    parameters = inspect.signature(cls).parameters
    extra: dict[str, Any] = {}
    if "runtime" in parameters:
        extra["runtime"] = runtime
    if "context" in parameters:
        extra["context"] = context
    return cls(settings, **extra)


def build_chain(
    spec: FilterSettings, runtime: ModelRuntime | None = None, context: FilterContext | None = None
) -> FilterChain:
    """The filter chain a spec describes, per modality, in the spec's order. Filters that run models
    use `runtime`; they load nothing until they first score a batch. Filters that keep results in the
    lake or share state use `context` (the shard's; a fresh one, without a lake, when not given)."""
    shared = context if context is not None else FilterContext()
    return FilterChain(
        {
            modality: [_build(item, runtime, shared) for item in getattr(spec, modality)]
            for modality in ("text", "image", "audio", "video")
        }
    )
