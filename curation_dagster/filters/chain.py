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


def _takes(cls: type[Filter], parameter: str) -> bool:
    return parameter in inspect.signature(cls).parameters


def _build(settings: Any, runtime: ModelRuntime | None, context: FilterContext) -> Filter:
    """A filter from its settings; classes whose constructor takes a `runtime` or a `context` get the
    chain's."""
    cls: Any = FILTERS[settings.kind]
    extra: dict[str, Any] = {}
    if _takes(cls, "runtime"):
        extra["runtime"] = runtime
    if _takes(cls, "context"):
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


def runs_in_workers(chain: FilterChain) -> bool:
    """Whether worker processes may run the chain, each on its own copy built from the settings alone: no
    filter runs a model on the accelerator (workers never touch a GPU) and none takes the shard's
    `context`, whose shared state (CLIP embeddings saved with the shard, skipped filters) must stay one."""
    filters = [item for items in chain.chains.values() for item in items]
    return not chain.needs_accelerator and not any(_takes(type(item), "context") for item in filters)
