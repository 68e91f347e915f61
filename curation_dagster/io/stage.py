"""The raw stage: a landing shard parsed and validated into the item contract, every item kept or rejected
with a raw.* code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from curation_dagster.errors import StageInputMissing
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import ReaderSettings, read_shard
from curation_dagster.io.resume_points import resume_part
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.validate import MediaLimits, validated_rows
from curation_dagster.progress import Progress
from curation_dagster.schema import (
    RAW_SCHEMA,
)
from curation_dagster.shard_io import (
    StageResult,
    shard_output,
    split_rows,
    stage_result,
)
from curation_dagster.spec import VersionSpec

RAW_BATCH_ROWS = 256

#: The raw stage writes a batch once its media and text reach this size, so a shard of large items holds
#: a few of them in memory at a time, not `RAW_BATCH_ROWS`.
RAW_BATCH_BYTES = 64 * 2**20

REJECT_MODALITY_EXCLUDED = "raw.modality_excluded"


def run_raw(
    spec: VersionSpec, lake: Lake, shard: str, source: Path, part: ShardPart | None = None
) -> StageResult:
    """Parse a landing shard (the whole file or folder `source`, or the items that start in `part` of it)
    into the item contract; every item that fails validation is a rejected row."""
    started = time.perf_counter()
    if not (source.exists() or source.is_symlink()):  # a dangling link is read, as one rejected row
        raise StageInputMissing(f"landing shard {shard!r} is gone: {source} does not exist")
    part = resume_part(lake, source, shard, part)
    settings = ReaderSettings(
        text_field=spec.raw.text_field,
        max_inline_bytes=spec.raw.max_inline_bytes,
        max_line_bytes=spec.raw.max_line_bytes,
        max_item_bytes=spec.raw.max_item_bytes,
    )
    limits = MediaLimits(max_image_pixels=spec.raw.max_image_pixels)
    rows_in = 0
    progress = Progress(f"{spec.name}/raw[{shard}]")
    with shard_output(lake, spec.name, "raw", shard, RAW_SCHEMA) as output:
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for row in validated_rows(read_shard(source, shard, settings, part), shard, str(source), limits):
            rows_in += 1
            if row.get("reject_reason") is None and row["modality"] not in spec.modalities:
                row["reject_reason"] = REJECT_MODALITY_EXCLUDED
                row["reject_detail"] = f"{row['modality']} is not in this version's modalities"
            batch.append(row)
            batch_bytes += len(row["media"] or b"") + len(row["text"] or "")
            if len(batch) >= RAW_BATCH_ROWS or batch_bytes >= RAW_BATCH_BYTES:
                output.write(*split_rows(batch, RAW_SCHEMA, "raw"))
                progress.advance(len(batch))
                batch, batch_bytes = [], 0
        output.write(*split_rows(batch, RAW_SCHEMA, "raw"))
    entered = {} if part is None or part.resume is None else {"source_entered_at": part.resume.describe()}
    return stage_result(spec, lake, "raw", shard, rows_in, output, started, **entered)
