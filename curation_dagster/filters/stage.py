"""The filtered stage: the spec's filter chain per modality over one shard."""

from __future__ import annotations

import time

import pyarrow as pa

from curation_dagster.filters.chain import build_chain
from curation_dagster.filters.context import FilterContext
from curation_dagster.filters.summary import summarize
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.progress import tracked
from curation_dagster.shard_io import (
    BATCH_ROWS,
    StageResult,
    shard_output,
    stage_result,
    upstream_path,
)
from curation_dagster.spec import VersionSpec


def run_filter(spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None) -> StageResult:
    """The spec's filter chain per modality; rejected rows keep every score computed before rejection.
    Filters that keep per-item results (CLIP image embeddings) save them once the shard is written; what
    they report, and the optional filters skipped, go into the stage's metadata."""
    started = time.perf_counter()
    source = upstream_path(spec, lake, "filtered", shard)
    context = FilterContext(lake=lake, version=spec.name, shard=shard)
    chain = build_chain(spec.filters, runtime, context)
    rows_in = lake.num_rows(source)
    schema = chain.output_schema(lake.schema(source))
    with shard_output(lake, spec.name, "filtered", shard, schema) as output:
        batches = lake.iter_batches(source, BATCH_ROWS)
        for batch in tracked(batches, f"{spec.name}/filtered[{shard}]", rows_in):
            output.write(*chain.run(pa.Table.from_batches([batch])))
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
