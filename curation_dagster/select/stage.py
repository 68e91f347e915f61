"""The selected stage: the spec's selection over one shard under the version's shared budget."""

from __future__ import annotations

import time

import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.schema import (
    with_fields,
)
from curation_dagster.select.base import SELECT_FIELDS
from curation_dagster.select.selector import Selector
from curation_dagster.shard_io import (
    BATCH_ROWS,
    StageResult,
    shard_output,
    stage_result,
    upstream_path,
)
from curation_dagster.spec import VersionSpec


def run_select(spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None) -> StageResult:
    """The spec's selection (`where`, quota groups, a strategy) under the version budget. Shards claim the
    budget first come, first served: under the version's selection lock, a shard sees what the shards
    selected before it took and plans within what is left. Embeddings, where the strategy needs them, are
    computed before the lock on `runtime`'s device (the CPU without one) and kept in the lake."""
    started = time.perf_counter()
    source = upstream_path(spec, lake, "selected", shard)
    selector = Selector(spec.select)
    rows_in = lake.num_rows(source)
    prepared = selector.prepare_shard(lake, spec.name, shard, source, runtime)
    with lake.lock(spec.name, "selection"):
        plan = selector.plan_shard(prepared, lake, spec.name, shard)
        schema = with_fields(lake.schema(source), SELECT_FIELDS)
        with shard_output(lake, spec.name, "selected", shard, schema) as output:
            for batch in lake.iter_batches(source, BATCH_ROWS):
                output.write(*plan.apply(pa.Table.from_batches([batch])))
    return stage_result(spec, lake, "selected", shard, rows_in, output, started, **plan.metadata())
