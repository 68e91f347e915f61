"""The multimodal version the release tests build from, and helpers that read a release back."""

from __future__ import annotations

import math
import tarfile
from pathlib import Path
from typing import Any

from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import ReleaseSettings, parse_spec
from curation_dagster.stages import STAGES
from tests.media_fixtures import MULTIMODAL_SPEC

SPEC = parse_spec(MULTIMODAL_SPEC)
#: Two files for the text and image configs, row groups of two, and tars of at most 20 KiB: three of the
#: version's images (about 5.5 KiB of members each) fit one, a sound (about 10.5 KiB) fits alone.
SMALL_FILES = ReleaseSettings(rows_per_parquet_file=3, row_group_rows=2, webdataset_max_bytes=20 * 1024)
SHARDS = ("text.jsonl", "media")
CONFIGS = ["text", "image", "audio", "video"]


def curated_lake(root: Path, landing: Path, shards: tuple[str, ...] = SHARDS) -> Lake:
    """A lake with every stage of `SPEC` run on `shards`, in that order."""
    store = Lake(root)
    for shard in shards:
        for stage in STAGES:
            run_stage(SPEC, store, stage, shard, landing / shard)
    return store


def final_rows(lake: Lake) -> dict[str, dict[str, Any]]:
    """The synthesized stage's rows of every shard, by id."""
    rows = [
        row for shard in SHARDS for row in lake.read_table(lake.path("mm", "synthesized", shard)).to_pylist()
    ]
    return {str(row["id"]): row for row in rows}


def release_files(folder: Path) -> dict[str, bytes]:
    """Every file of a release folder by its relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def tar_items(path: Path) -> dict[str, dict[str, bytes]]:
    """A tar's members by item key and extension, items in the order they are stored."""
    items: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as archive:
        for info in archive.getmembers():
            handle = archive.extractfile(info)
            assert handle is not None
            key, extension = info.name.split(".", 1)
            items.setdefault(key, {})[extension] = handle.read()
    return items


def packed_tar_bytes(items: list[dict[str, bytes]]) -> int:
    """The size of a USTAR tar of these items: a 512-byte header and padded data per member, two zero
    blocks at the end, padded to 10 KiB records."""
    members = sum(512 + math.ceil(len(data) / 512) * 512 for item in items for data in item.values())
    return math.ceil((members + 1024) / 10240) * 10240
