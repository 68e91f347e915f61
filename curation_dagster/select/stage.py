"""The selected stage: the spec's selection over one shard under the version's shared budget."""

from __future__ import annotations

import time

import pyarrow as pa

from curation_dagster.faults import crash_point
from curation_dagster.io.claims import ClaimJournal, roll_back_interrupted, run_lock_name
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.schema import (
    with_fields,
)
from curation_dagster.select.base import SELECT_FIELDS
from curation_dagster.select.selector import Selector
from curation_dagster.select.state import SELECTION_LOCK, Usage, UsageLedger, usage_of_table
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
    journal = ClaimJournal(lake, spec.name, "selected")
    ledger = UsageLedger(lake, spec.name)
    with lake.lock(spec.name, run_lock_name("selected", shard)):
        prepared = selector.prepare_shard(lake, spec.name, shard, source, runtime)
        with lake.lock(spec.name, SELECTION_LOCK):
            interrupted = roll_back_interrupted(
                journal, shard, lambda other: forget_selection(spec, lake, other)
            )
            plan = selector.plan_shard(prepared, lake, spec.name, shard)
            schema = with_fields(lake.schema(source), SELECT_FIELDS)
            journal.begin(shard)
            used = Usage()
            with shard_output(lake, spec.name, "selected", shard, schema) as output:
                for batch in lake.iter_batches(source, BATCH_ROWS):
                    selected, rejected = plan.apply(pa.Table.from_batches([batch]))
                    used = used.plus(usage_of_table(selected))
                    output.write(selected, rejected)
            crash_point("selected", "after_output", shard)
            ledger.put(shard, used)
            journal.finish(shard)
    metadata = plan.metadata()
    if interrupted:
        metadata["rolled_back_interrupted_shards"] = interrupted
    return stage_result(spec, lake, "selected", shard, rows_in, output, started, **metadata)


def forget_selection(spec: VersionSpec, lake: Lake, shard: str) -> None:
    """Remove a shard's selected output and its part of the version's selection ledger."""
    for rejected in (False, True):
        lake.remove(lake.path(spec.name, "selected", shard, rejected=rejected))
    UsageLedger(lake, spec.name).forget(shard)
