"""The filtered stage: the spec's filter chain per modality over one shard, in the stage's process or, for
a large shard whose chain allows it, in worker processes with the same output."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from curation_dagster import settings
from curation_dagster.filters.base import FilterChain
from curation_dagster.filters.chain import build_chain, runs_in_workers
from curation_dagster.filters.context import FilterContext
from curation_dagster.filters.summary import summarize
from curation_dagster.filters.workers import ChainWorkers, Scored, available_cores, default_workers
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.progress import note, tracked
from curation_dagster.shard_io import (
    BATCH_ROWS,
    StageResult,
    shard_output,
    stage_result,
    upstream_path,
)
from curation_dagster.spec import FilterSettings, VersionSpec

Scoring = Callable[[Iterable[pa.Table]], Iterator[Scored]]


def run_filter(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    runtime: ModelRuntime | None = None,
    workers: int | None = None,
) -> StageResult:
    """The spec's filter chain per modality; rejected rows keep every score computed before rejection.
    Filters that keep per-item results (CLIP image embeddings) save them once the shard is written; what
    they report, and the optional filters skipped, go into the stage's metadata. `workers` processes
    score the batches when the chain allows it (None: $CURATION_WORKERS, else `default_workers`); the
    files and the metadata are the same for any number."""
    started = time.perf_counter()
    source = upstream_path(spec, lake, "filtered", shard)
    context = FilterContext(lake=lake, version=spec.name, shard=shard)
    chain = build_chain(spec.filters, runtime, context)
    rows_in = lake.num_rows(source)
    schema = chain.output_schema(lake.schema(source))
    count = worker_count(workers, rows_in, chain)
    label = f"{spec.name}/filtered[{shard}]"
    if count > 1:
        note(f"{label}: scoring in {count} worker processes")
    with (
        shard_output(lake, spec.name, "filtered", shard, schema) as output,
        _scoring(chain, spec.filters, count) as score,
    ):
        batches = tracked(lake.iter_batches(source, BATCH_ROWS), label, rows_in)
        for kept, rejected in score(pa.Table.from_batches([batch]) for batch in batches):
            output.write(kept, rejected)
    finished = context.finish()
    summary = summarize(
        lake.connect(),
        lake.url(lake.path(spec.name, "filtered", shard)),
        lake.url(lake.path(spec.name, "filtered", shard, rejected=True)),
        chain.score_fields,
    )
    return stage_result(
        spec,
        lake,
        "filtered",
        shard,
        rows_in,
        output,
        started,
        score_quantiles=summary.quantiles_markdown(),
        score_values=summary.categories or None,
        rejected_examples=summary.examples_markdown(),
        **finished,
    )


def worker_count(requested: int | None, rows: int, chain: FilterChain) -> int:
    """How many processes score a shard of `rows` rows: 1 when the chain must stay in the stage's process
    (`runs_in_workers`), else `requested`, $CURATION_WORKERS or `default_workers`, at most one per batch."""
    if not runs_in_workers(chain):
        return 1
    wanted = requested if requested is not None else settings.filter_workers()
    if wanted is None:
        wanted = default_workers(rows, available_cores())
    return max(1, min(wanted, -(-rows // BATCH_ROWS)))


@contextlib.contextmanager
def _scoring(chain: FilterChain, filters: FilterSettings, count: int) -> Iterator[Scoring]:
    """Batches to (kept, rejected) in input order: the chain itself, or `count` workers running copies."""
    if count == 1:
        yield lambda tables: map(chain.run, tables)
        return
    with ChainWorkers(filters, count) as workers:
        yield workers.run
