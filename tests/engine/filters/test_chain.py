"""Tests of curation_dagster/filters/chain.py: spec filter kinds map to filter classes, in spec order."""

from __future__ import annotations

import typing

from curation_dagster.filters.chain import FILTERS, build_chain, runs_in_workers
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
from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.spec import FilterSettings, parse_spec


def test_every_filter_kind_the_spec_accepts_has_a_class() -> None:
    kinds = set()
    for field in FilterSettings.model_fields.values():
        item_type = typing.get_args(field.annotation)[0]  # tuple[X, ...] -> X
        union = typing.get_args(item_type)[0]  # Annotated[A | B, Field(...)] -> A | B
        kinds.update(member.model_fields["kind"].default for member in typing.get_args(union))

    assert kinds == set(FILTERS)


def test_build_chain_keeps_the_spec_order_per_modality() -> None:
    spec = parse_spec(
        {
            "name": "v",
            "filters": {
                "text": [{"kind": "blocklist", "words": ["x"]}, {"kind": "text_length"}],
                "image": [{"kind": "image_blank"}, {"kind": "image_size"}],
                "audio": [{"kind": "audio_silence"}, {"kind": "duration"}],
                "video": [],
            },
        }
    )

    chain = build_chain(spec.filters)

    assert {m: [type(f) for f in filters] for m, filters in chain.chains.items()} == {
        "text": [Blocklist, TextLength],
        "image": [ImageBlank, ImageSize],
        "audio": [AudioSilence, Duration],
        "video": [],
    }


def test_build_chain_passes_the_spec_settings_to_each_filter() -> None:
    spec = parse_spec({"name": "v", "filters": {"text": [{"kind": "text_length", "min_chars": 3}]}})

    (length,) = build_chain(spec.filters).chains["text"]

    assert length.settings.min_chars == 3


def test_default_media_chains_end_with_the_quality_filters() -> None:
    chains = build_chain(FilterSettings()).chains

    assert [type(f) for f in chains["image"]] == [ImageSize, ImageBlank, ImageBlur]
    assert [type(f) for f in chains["audio"]] == [Duration, AudioSilence, AudioQuality]
    assert [type(f) for f in chains["video"]] == [Duration, VideoQuality, VideoMotion]


def test_a_chain_of_cpu_filters_runs_in_workers() -> None:
    text = [{"kind": kind} for kind in ("language", "gopher_quality", "c4_quality", "toxicity", "register")]
    spec = parse_spec({"name": "v", "filters": {"text": [*text, {"kind": "pii"}]}})

    assert runs_in_workers(build_chain(spec.filters))


def test_a_chain_that_runs_a_model_on_the_accelerator_stays_in_the_stage_process() -> None:
    spec = parse_spec({"name": "v", "filters": {"text": [{"kind": "toxicity", "use_model": True}]}})

    assert not runs_in_workers(build_chain(spec.filters))


def test_a_chain_with_a_filter_that_keeps_state_in_the_shard_context_stays_in_the_stage_process() -> None:
    spec = parse_spec({"name": "v", "filters": {"image": [{"kind": "clip_score", "optional": True}]}})

    assert not runs_in_workers(build_chain(spec.filters))
