"""The deduped stage: exact, near-duplicate, media and (when on) semantic duplicates of a shard, decided
against every earlier shard through the version's indexes, written with the shard's claims under the
claim journal."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.examples import MediaExamples, TextPairs, media_counts
from curation_dagster.dedup.indexes import (
    DEDUP_INDEX,
    check_exact_index,
)
from curation_dagster.dedup.media import MediaOutcome
from curation_dagster.dedup.minhash import uses_pair_sketch
from curation_dagster.dedup.near import ShardOutcome
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.dedup.plan import (
    DedupPlan,
    ShardHashes,
    apply_dedup,
    compute_dedup,
    decide_dedup,
    media_index,
    media_steps,
    merge_key_stores,
    shard_claims,
)
from curation_dagster.dedup.semantic import (
    SEMANTIC_INDEXES,
)
from curation_dagster.dedup.semantic_plan import SemanticStep, compute_semantic, plan_semantic
from curation_dagster.faults import crash_point
from curation_dagster.io.claims import ClaimJournal, roll_back_interrupted, run_lock_name
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.progress import PhaseClock, note, tracked
from curation_dagster.schema import (
    DEDUP_FIELDS,
    with_fields,
)
from curation_dagster.shard_io import (
    BATCH_ROWS,
    ShardOutput,
    StageResult,
    shard_output,
    stage_result,
    upstream_path,
)
from curation_dagster.spec import NearDedupSettings, VersionSpec


def forget_dedup_claims(spec: VersionSpec, lake: Lake, shard: str) -> None:
    """Remove a shard's deduped output and every claim it made in the version's dedup indexes."""
    for rejected in (False, True):
        lake.remove(lake.path(spec.name, "deduped", shard, rejected=rejected))
    lake.remove(lake.path(spec.name, DEDUP_INDEX, shard))
    ExactIndex(lake, spec.name).remove(shard)
    NearIndex(lake, spec.name, spec.dedup.near).remove(shard)
    for step in media_steps(spec, every=True):
        media_index(lake, spec.name, step).remove(shard)
    for index_name in SEMANTIC_INDEXES.values():
        lake.remove(lake.path(spec.name, index_name, shard))


@dataclass
class _Decisions:
    """Everything pass one decided for a shard: the rows to remove and what each index gets."""

    plan: DedupPlan
    near: ShardOutcome | None
    media: dict[str, MediaOutcome]
    semantic: SemanticStep | None
    checked_against: int


@dataclass
class _Written:
    """What pass two wrote: the output's counts, the shard's claims, and the example tables."""

    output: ShardOutput
    claims: pa.Table
    near_examples: TextPairs
    near_misses: TextPairs
    media_examples: MediaExamples
    semantic_examples: TextPairs


def run_dedup(spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None) -> StageResult:
    """Exact, then near and media, then (when on) semantic duplicates, within the shard and against every
    earlier shard through the lake's indexes (never their text); an earlier claim always wins, so nothing
    kept before is removed later. Compute in parallel, claim in order: hashes, signatures and embeddings
    (on `runtime`'s device, the CPU without one) are computed with no lock held, so shards of a version
    run at the same time; only the look-ups, the decisions and the claims hold the version's dedup lock.
    The output is written after the claims, under the shard's run lock (`run_lock_name`)."""
    started = time.perf_counter()
    source = upstream_path(spec, lake, "deduped", shard)
    rows_in = lake.num_rows(source)
    journal = ClaimJournal(lake, spec.name, "deduped")
    with lake.lock(spec.name, run_lock_name("deduped", shard)):
        phases = PhaseClock()  # after the shard's run lock: compute is computing, not waiting for it
        check_indexes(spec, lake, shard)
        computed = compute_dedup(spec, lake, shard, source, rows_in)
        vectors = compute_semantic(spec, lake, shard, source, set(computed.hashes.local_duplicates), runtime)
        phases.mark("compute")
        note(f"{spec.name}/deduped[{shard}]: computed; waiting for the version's dedup claim lock")
        with lake.lock(spec.name, DEDUP_INDEX):
            phases.mark("wait")
            interrupted = roll_back_interrupted(
                journal, shard, lambda other: forget_dedup_claims(spec, lake, other)
            )
            exact_index = ExactIndex(lake, spec.name)
            check_exact_index(lake, spec.name, shard, exact_index)
            plan, near, media = decide_dedup(spec, lake, shard, computed, exact_index)
            semantic = plan_semantic(spec, lake, shard, vectors, plan)
            others = [other for other in exact_index.keys.shards() if other != shard]
            decisions = _Decisions(plan, near, media, semantic, len(others))
            journal.begin(shard)
            claims = shard_claims(computed.hashes, plan, shard)
            _write_claims(spec, lake, shard, exact_index, claims, decisions)
            crash_point("deduped", "after_claims", shard)
        phases.mark("claim")
        written = _write_output(spec, lake, shard, source, rows_in, plan, claims, near, computed.hashes)
        crash_point("deduped", "after_output", shard)
        journal.finish(shard)
        phases.mark("output")
        merged = merge_key_stores(spec, lake, DEDUP_INDEX)
        phases.mark("merge")
    metadata = _metadata(spec, lake, shard, rows_in, decisions, written)
    metadata["phases"] = phases.table()
    metadata["index_tiers_merged"] = merged
    if interrupted:
        metadata["rolled_back_interrupted_shards"] = interrupted
    return stage_result(spec, lake, "deduped", shard, rows_in, written.output, started, **metadata)


def check_indexes(spec: VersionSpec, lake: Lake, shard: str) -> None:
    """Fail on an index of the version that these settings cannot use before computing anything."""
    if spec.dedup.near.enabled:
        NearIndex(lake, spec.name, spec.dedup.near).check(shard)
    for step in media_steps(spec):
        index = media_index(lake, spec.name, step)
        index.keys.manifest()  # refuses a store built with other settings
        index.check(shard)


def _write_output(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    source: str,
    rows_in: int,
    plan: DedupPlan,
    claims: pa.Table,
    near: ShardOutcome | None,
    content_hashes: ShardHashes,
) -> _Written:
    """Pass two: every row of the shard, kept or marked with the kept item it duplicates, with the content
    hash pass one computed."""
    schema = with_fields(lake.schema(source), DEDUP_FIELDS)
    near_columns: dict[str, Callable[[Any], str]] = {
        "similarity": lambda d: f"{d.similarity:.2f}",
        "measure": lambda d: str(d.measure),
    }
    near_examples = TextPairs(plan.near, "No near duplicates in this shard.", near_columns)
    near_misses = TextPairs(
        near.near_misses if near else {},
        "No near misses in this shard.",
        near_columns,
        headers=("item of this shard", f"closest item under the cut ({near_cuts(spec.dedup.near)})"),
    )
    media_examples = MediaExamples(plan)
    semantic_examples = TextPairs(
        plan.semantic,
        "No semantic duplicates in this shard.",
        {"cosine similarity": lambda d: f"{d.similarity:.3f}", "cluster": lambda d: str(d.cluster)},
        difference=False,
    )
    start = 0
    with shard_output(lake, spec.name, "deduped", shard, schema) as output:
        batches = lake.iter_batches(source, BATCH_ROWS)
        for batch in tracked(batches, f"{spec.name}/deduped[{shard}] writing", rows_in):
            hashes = content_hashes.of_rows(start, start + batch.num_rows)
            start += batch.num_rows
            kept, rejected = apply_dedup(pa.Table.from_batches([batch]), plan, hashes)
            near_examples.collect(kept, rejected)
            near_misses.collect(kept, rejected)
            media_examples.collect(rejected)
            semantic_examples.collect(kept, rejected)
            output.write(kept, rejected)
    return _Written(output, claims, near_examples, near_misses, media_examples, semantic_examples)


def _write_claims(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    exact_index: ExactIndex,
    claims: pa.Table,
    decisions: _Decisions,
) -> None:
    """The shard's entries in every dedup index of the version (`forget_dedup_claims` removes them): its
    kept items' content hashes, near-duplicate signatures, media hashes and semantic vectors; an index
    whose step did not run for the shard loses the shard's old entries."""
    lake.write_table(lake.path(spec.name, DEDUP_INDEX, shard), claims)
    hashes, ids = claims.column("content_hash").to_pylist(), claims.column("id").to_pylist()
    exact_index.write(shard, hashes, ids, merge=False)  # merged after the lock (`merge_key_stores`)
    near_index = NearIndex(lake, spec.name, spec.dedup.near)
    if decisions.near is not None:
        near_index.write(shard, decisions.near, merge=False)
    else:
        near_index.remove(shard)
    for step in media_steps(spec, every=True):
        index = media_index(lake, spec.name, step)
        if step.modality in decisions.media:
            index.write(shard, decisions.media[step.modality].index, merge=False)
        else:
            index.remove(shard)
    if decisions.semantic is not None:
        decisions.semantic.write_index(shard)
    else:
        for semantic_index in SEMANTIC_INDEXES.values():
            lake.remove(lake.path(spec.name, semantic_index, shard))


def _metadata(
    spec: VersionSpec, lake: Lake, shard: str, rows_in: int, decisions: _Decisions, written: _Written
) -> dict[str, Any]:
    """The stage's numbers and examples for the asset's metadata."""
    plan, near, semantic = decisions.plan, decisions.near, decisions.semantic
    removed = len(plan.exact) + len(plan.near) + len(plan.media) + len(plan.semantic)
    own_ids = (
        set(plan.exact) | set(written.claims.column("id").to_pylist()) | set(plan.near) | set(plan.semantic)
    )
    semantic_examples = written.semantic_examples.markdown(lake, spec.name, shard)
    return {
        "duplicate_rate": round(removed / max(rows_in, 1), 4),
        "exact_duplicates": len(plan.exact),
        "exact_duplicates_of_other_shards": sum(owner not in own_ids for owner in plan.exact.values()),
        "near_duplicates": len(plan.near),
        "near_duplicates_of_other_shards": near.cross_shard if near else 0,
        "near_duplicates_by_measure": dict(sorted(Counter(d.measure for d in plan.near.values()).items())),
        "near_misses": near.near_miss_pairs if near else 0,
        "near_miss_examples": written.near_misses.markdown(lake, spec.name, shard),
        "checked_against_shards": decisions.checked_against,
        "cluster_sizes": {
            str(size): count for size, count in sorted((near.cluster_sizes if near else {}).items())
        },
        "example_pairs": written.near_examples.markdown(lake, spec.name, shard),
        **media_counts(decisions.media),
        "media_example_pairs": written.media_examples.markdown(),
        **(semantic.metadata(semantic_examples) if semantic else {}),
    }


def near_cuts(settings: NearDedupSettings) -> str:
    """The cuts a near-duplicate pair must reach, as the near misses' header names them."""
    if uses_pair_sketch(settings):
        return f"words {settings.min_similarity:g}, word pairs {settings.min_pair_similarity:g}"
    return f"{settings.min_similarity:g}"
