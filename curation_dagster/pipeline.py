"""`run_stage`: one stage of a dataset version for one shard, by name, dispatched to the stage's runner in
its own family (`stages.py` lists the stages). Dagster-free: `run_stage(spec, lake, "deduped",
"news_en.jsonl")` works in a notebook.
"""

from __future__ import annotations

from pathlib import Path

from curation_dagster.dedup.stage import run_dedup
from curation_dagster.filters.stage import run_filter
from curation_dagster.io.lake import Lake
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.stage import run_raw
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.select.stage import run_select
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import STAGES
from curation_dagster.synth.stage import run_synthesize

#: The runner of each stage but raw (which reads a landing path, not the lake).
_RUNNERS = {
    "deduped": run_dedup,
    "filtered": run_filter,
    "selected": run_select,
    "synthesized": run_synthesize,
}


def run_stage(
    spec: VersionSpec,
    lake: Lake,
    stage: str,
    shard: str,
    source: Path | None = None,
    runtime: ModelRuntime | None = None,
    part: ShardPart | None = None,
) -> StageResult:
    """Run one stage for one shard. The raw stage needs the landing `source` path, and the `part` of it
    when the shard is one bounded part of a large file; the stages that run models (filters, selection
    embeddings, generation) use `runtime`."""
    if stage == "raw":
        if source is None:
            raise ValueError("the raw stage needs the landing shard's path")
        return run_raw(spec, lake, shard, source, part)
    if stage not in _RUNNERS:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return _RUNNERS[stage](spec, lake, shard, runtime)
