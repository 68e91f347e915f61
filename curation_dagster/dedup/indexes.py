"""Where a version's dedup claims live in the lake: the index names (one list), the shards that hold
files of an index, and the check that refuses claims of an earlier release."""

from __future__ import annotations

from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake

DEDUP_INDEX = "dedup_index"

IMAGE_HASHES = "image_hashes"

VIDEO_HASHES = "video_hashes"

AUDIO_HASHES = "audio_hashes"

#: The hash index of each media modality's near-dedup step.
MEDIA_INDEXES = {"image": IMAGE_HASHES, "video": VIDEO_HASHES, "audio": AUDIO_HASHES}

SYNTH_INDEX = "synth_index"

#: Prefix of the near-duplicate index of admitted synthetic text (`synth_near_keys`, ...).
SYNTH_PREFIX = "synth_"


def check_exact_index(
    lake: Lake, version: str, shard: str, index: ExactIndex, record: str = DEDUP_INDEX
) -> None:
    """Refuse claims recorded in `record` (Parquet) for other shards that the exact key store lacks
    (written by an earlier release): a lookup would silently miss their duplicates."""
    missing = sorted(set(lake.list_shards(version, record)) - set(index.keys.shards()) - {shard})
    if missing:
        stage = "deduped" if record == DEDUP_INDEX else "synthesized"
        raise SpecError(
            f"the exact-duplicate claims of shards {', '.join(missing[:3])} have no keys in "
            f"{lake.url(index.keys.folder)} (an index from an earlier release); materialize "
            f"the {stage} stage again for every shard of this version, in arrival order"
        )
