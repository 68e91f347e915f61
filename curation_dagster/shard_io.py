"""A stage's output for one shard: kept and rejected rows written to two atomic Parquet files, counted by
outcome and reason, and the `StageResult` that reports them; the upstream output a stage reads."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from curation_dagster.errors import StageInputMissing
from curation_dagster.io.claims import ClaimJournal
from curation_dagster.io.lake import Lake
from curation_dagster.schema import (
    conform,
    mark_rejected,
    rejected_schema,
)
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import CLAIMING_STAGES, UPSTREAM

BATCH_ROWS = 1024


@dataclass
class StageResult:
    """What one stage did to one shard: counts by outcome and reason, where the output is, how long."""

    version: str
    stage: str
    shard: str
    rows_in: int
    rows_kept: int
    rows_rejected: int
    reasons: dict[str, int]
    kept_path: str
    rejected_path: str
    elapsed_s: float
    schema: pa.Schema
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.rows_in / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def conserved(self) -> bool:
        return self.rows_in == self.rows_kept + self.rows_rejected


class ShardOutput:
    """Collects a stage's kept and rejected batches into two atomic Parquet writers."""

    def __init__(self, kept_writer: Any, rejected_writer: Any, schema: pa.Schema) -> None:
        self._kept, self._rejected = kept_writer, rejected_writer
        self.schema, self.rejected_schema = schema, rejected_schema(schema)
        self.kept = 0
        self.rejected = 0
        self.reasons: Counter[str] = Counter()

    def write(self, kept: pa.Table, rejected: pa.Table) -> None:
        if kept.num_rows:
            self._kept.write_table(conform(kept, self.schema))
            self.kept += kept.num_rows
        if rejected.num_rows:
            self._rejected.write_table(conform(rejected, self.rejected_schema))
            self.rejected += rejected.num_rows
            self.reasons.update(rejected.column("reject_reason").to_pylist())


@contextlib.contextmanager
def shard_output(
    lake: Lake, version: str, stage: str, shard: str, schema: pa.Schema
) -> Iterator[ShardOutput]:
    kept_path = lake.path(version, stage, shard)
    rejected_path = lake.path(version, stage, shard, rejected=True)
    # Nested so that the rejected file is committed first and the kept file last.
    with (
        lake.atomic_writer(kept_path, schema) as kept_writer,
        lake.atomic_writer(rejected_path, rejected_schema(schema)) as rejected_writer,
    ):
        yield ShardOutput(kept_writer, rejected_writer, schema)


def upstream_path(spec: VersionSpec, lake: Lake, stage: str, shard: str) -> str:
    """The upstream stage's output for the shard; StageInputMissing when it is absent or its claims are
    unfinished (an upstream run that stopped half-way)."""
    upstream = UPSTREAM[stage]
    path = lake.path(spec.name, upstream, shard)
    if not lake.exists(path):
        raise StageInputMissing(
            f"{spec.name}/{stage} for shard {shard!r} needs {spec.name}/{upstream} first: {lake.url(path)} is missing"
        )
    if upstream in CLAIMING_STAGES:
        ClaimJournal(lake, spec.name, upstream).require_complete(shard)
    return path


def stage_result(
    spec: VersionSpec,
    lake: Lake,
    stage: str,
    shard: str,
    rows_in: int,
    output: ShardOutput,
    started: float,
    **extra: Any,
) -> StageResult:
    return StageResult(
        version=spec.name,
        stage=stage,
        shard=shard,
        rows_in=rows_in,
        rows_kept=output.kept,
        rows_rejected=output.rejected,
        reasons=dict(sorted(output.reasons.items())),
        kept_path=lake.url(lake.path(spec.name, stage, shard)),
        rejected_path=lake.url(lake.path(spec.name, stage, shard, rejected=True)),
        elapsed_s=time.perf_counter() - started,
        schema=output.schema,
        extra=extra,
    )


def split_rows(rows: list[dict[str, Any]], schema: pa.Schema, stage: str) -> tuple[pa.Table, pa.Table]:
    """Validated row dicts as (kept, rejected) tables of `schema`; rejected rows carry their reason."""
    kept = [row for row in rows if row.get("reject_reason") is None]
    rejected = [row for row in rows if row.get("reject_reason") is not None]
    kept_table = pa.Table.from_pylist(kept, schema=schema) if kept else schema.empty_table()
    if not rejected:
        return kept_table, rejected_schema(schema).empty_table()
    return kept_table, mark_rejected(
        pa.Table.from_pylist(rejected, schema=rejected_schema(schema)),
        stage,
        [str(row["reject_reason"]) for row in rejected],
        [row.get("reject_detail") for row in rejected],
    )
