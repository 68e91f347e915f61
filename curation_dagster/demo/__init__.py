"""The demo generator: writes the bundled demo landing zone from the corpus shipped in `corpus/`."""

from curation_dagster.demo.generator import DEMO_SHARD_NAMES, demo_landing_is_complete, generate_demo_landing
from curation_dagster.demo.text import (
    ENCYCLOPEDIA_SENTENCES,
    FORUM_SENTENCES,
    NEWS_SENTENCES,
    TOXIC_FORUM_TEXTS,
    TOXIC_NEWS_TEXTS,
)

__all__ = [
    "DEMO_SHARD_NAMES",
    "ENCYCLOPEDIA_SENTENCES",
    "FORUM_SENTENCES",
    "NEWS_SENTENCES",
    "TOXIC_FORUM_TEXTS",
    "TOXIC_NEWS_TEXTS",
    "demo_landing_is_complete",
    "generate_demo_landing",
]
