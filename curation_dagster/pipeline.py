"""The five stages of a dataset version, one shard at a time: read the upstream shard from the lake,
run the stage's operators batch by batch, write kept and rejected rows atomically, and report counts.

Dagster-free: `run_stage(spec, lake, "deduped", "news_en.jsonl")` works in a notebook.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.dedup.audio import AudioFingerprinter
from curation_dagster.dedup.exact import INDEX_SCHEMA, REJECT_EXACT, ExactDedup
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.media import (
    MEDIA_FINGERPRINT_KEY,
    REJECT_AUDIO,
    REJECT_IMAGE,
    REJECT_VIDEO,
    AudioMatcher,
    HashSet,
    ImageMatcher,
    MediaDecision,
    MediaMatcher,
    MediaOutcome,
    ShardMedia,
    VideoMatcher,
    add_images,
    add_sequence,
    audio_fingerprinter,
    audio_index_schema,
    audio_settings_fingerprint,
    decide,
    image_hasher,
    image_index_schema,
    image_settings_fingerprint,
    index_hash_set,
    video_fingerprinter,
    video_index_schema,
    video_settings_fingerprint,
)
from curation_dagster.dedup.near import REJECT_NEAR, NearDecision, NearDedup, ShardOutcome, ShardSignatures
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.dedup.perceptual import VideoFingerprinter
from curation_dagster.dedup.semantic import (
    REJECT_SEMANTIC,
    SEMANTIC_INDEXES,
    EarlierLookup,
    SemanticDecision,
    SemanticDedup,
    SemanticIndex,
    SemanticOutcome,
    VectorSource,
    clustering_fingerprint,
    describe,
    vector_source,
    version_centroids,
)
from curation_dagster.errors import SpecError, StageInputMissing
from curation_dagster.faults import crash_point
from curation_dagster.filters.base import FilterChain
from curation_dagster.filters.chain import build_chain
from curation_dagster.filters.context import FilterContext
from curation_dagster.filters.summary import summarize
from curation_dagster.io.claims import ClaimJournal
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import ReaderSettings, read_shard
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import MediaLimits, validate_record, validated_rows
from curation_dagster.media import media_bytes
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.progress import Progress, note, tracked
from curation_dagster.schema import (
    DEDUP_FIELDS,
    RAW_SCHEMA,
    SYNTH_FIELDS,
    conform,
    mark_rejected,
    rejected_schema,
    with_fields,
)
from curation_dagster.select.base import SELECT_FIELDS
from curation_dagster.select.sample import sample_score
from curation_dagster.select.selector import Selector
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import CLAIMING_STAGES, STAGES, UPSTREAM
from curation_dagster.synth.admission import MediaAdmission, NearAdmission
from curation_dagster.synth.recipes import Outcome, Recipe, Unusable, build_recipes

DEDUP_INDEX = "dedup_index"
IMAGE_HASHES = "image_hashes"
VIDEO_HASHES = "video_hashes"
AUDIO_HASHES = "audio_hashes"
#: The hash index of each media modality's near-dedup step.
MEDIA_INDEXES = {"image": IMAGE_HASHES, "video": VIDEO_HASHES, "audio": AUDIO_HASHES}
SYNTH_INDEX = "synth_index"
#: Prefix of the near-duplicate index of admitted synthetic text (`synth_near_keys`, ...).
SYNTH_PREFIX = "synth_"
RAW_BATCH_ROWS = 256
#: The raw stage writes a batch once its media and text reach this size, so a shard of large items holds
#: a few of them in memory at a time, not `RAW_BATCH_ROWS`.
RAW_BATCH_BYTES = 64 * 2**20
BATCH_ROWS = 1024
REJECT_MODALITY_EXCLUDED = "raw.modality_excluded"


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


class _ShardOutput:
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
def _shard_output(
    lake: Lake, version: str, stage: str, shard: str, schema: pa.Schema
) -> Iterator[_ShardOutput]:
    kept_path = lake.path(version, stage, shard)
    rejected_path = lake.path(version, stage, shard, rejected=True)
    # Nested so that the rejected file is committed first and the kept file last.
    with (
        lake.atomic_writer(kept_path, schema) as kept_writer,
        lake.atomic_writer(rejected_path, rejected_schema(schema)) as rejected_writer,
    ):
        yield _ShardOutput(kept_writer, rejected_writer, schema)


def _upstream_path(spec: VersionSpec, lake: Lake, stage: str, shard: str) -> str:
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


def _result(
    spec: VersionSpec,
    lake: Lake,
    stage: str,
    shard: str,
    rows_in: int,
    output: _ShardOutput,
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


def _split_rows(rows: list[dict[str, Any]], schema: pa.Schema, stage: str) -> tuple[pa.Table, pa.Table]:
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


def run_raw(spec: VersionSpec, lake: Lake, shard: str, source: Path) -> StageResult:
    """Parse a landing shard into the item contract; every item that fails validation is a rejected row."""
    started = time.perf_counter()
    if not (source.exists() or source.is_symlink()):  # a dangling link is read, as one rejected row
        raise StageInputMissing(f"landing shard {shard!r} is gone: {source} does not exist")
    settings = ReaderSettings(
        text_field=spec.raw.text_field,
        max_inline_bytes=spec.raw.max_inline_bytes,
        max_line_bytes=spec.raw.max_line_bytes,
        max_item_bytes=spec.raw.max_item_bytes,
    )
    limits = MediaLimits(max_image_pixels=spec.raw.max_image_pixels)
    rows_in = 0
    progress = Progress(f"{spec.name}/raw[{shard}]")
    with _shard_output(lake, spec.name, "raw", shard, RAW_SCHEMA) as output:
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for row in validated_rows(read_shard(source, shard, settings), shard, str(source), limits):
            rows_in += 1
            if row.get("reject_reason") is None and row["modality"] not in spec.modalities:
                row["reject_reason"] = REJECT_MODALITY_EXCLUDED
                row["reject_detail"] = f"{row['modality']} is not in this version's modalities"
            batch.append(row)
            batch_bytes += len(row["media"] or b"") + len(row["text"] or "")
            if len(batch) >= RAW_BATCH_ROWS or batch_bytes >= RAW_BATCH_BYTES:
                output.write(*_split_rows(batch, RAW_SCHEMA, "raw"))
                progress.advance(len(batch))
                batch, batch_bytes = [], 0
        output.write(*_split_rows(batch, RAW_SCHEMA, "raw"))
    return _result(spec, lake, "raw", shard, rows_in, output, started)


def _index_paths(lake: Lake, version: str, index: str, exclude: str | None = None) -> dict[str, str]:
    """The lake paths of an index's files, by shard, for every shard of `version` but `exclude`."""
    return {
        shard: lake.path(version, index, shard)
        for shard in lake.list_shards(version, index)
        if shard != exclude
    }


@dataclass
class _DedupPlan:
    """Pass one's result: the rows that exact and near dedup remove, by id. Content hashes are not
    kept for every row: pass two computes them again, so memory follows the duplicates, not the shard."""

    exact: dict[str, str] = field(default_factory=dict)
    near: dict[str, NearDecision] = field(default_factory=dict)
    media: dict[str, tuple[str, MediaDecision]] = field(default_factory=dict)
    """Near-duplicate images, videos and sounds: id -> (reject code, decision)."""
    semantic: dict[str, SemanticDecision] = field(default_factory=dict)
    """Semantic duplicates of every modality of `dedup.semantic.modalities` (after exact and near dedup)."""

    def link(self, item: str) -> _DuplicateLink | None:
        """Why `item` is removed, naming the item it duplicates directly; None when it is kept."""
        if item in self.exact:
            owner = self.exact[item]
            return _DuplicateLink(owner, 1.0, REJECT_EXACT, f"same normalised content as {owner}")
        if item in self.near:
            near = self.near[item]
            detail = f"near duplicate of {near.dup_of} (estimated similarity {near.similarity:.2f})"
            return _DuplicateLink(near.dup_of, near.similarity, REJECT_NEAR, detail)
        if item in self.media:
            code, media = self.media[item]
            return _DuplicateLink(media.dup_of, media.similarity, code, media.detail)
        if item in self.semantic:
            semantic = self.semantic[item]
            return _DuplicateLink(semantic.dup_of, semantic.similarity, REJECT_SEMANTIC, describe(semantic))
        return None

    def survivor_link(self, item: str) -> _DuplicateLink | None:
        """`link(item)` with `dup_of` followed to the item that is kept: an exact copy of an item that a
        later step removed points at what that item duplicates, never at a removed item. The similarity
        is the lowest along the way, and the detail names each removed item passed."""
        first = self.link(item)
        if first is None:
            return None
        dup_of, similarity, detail, seen = first.dup_of, first.similarity, first.detail, {item}
        while dup_of not in seen and (step := self.link(dup_of)) is not None:
            seen.add(dup_of)
            detail += f"; {dup_of} was removed too: {step.detail}"
            dup_of, similarity = step.dup_of, min(similarity, step.similarity)
        return _DuplicateLink(dup_of, similarity, first.reason, detail)


@dataclass(frozen=True)
class _DuplicateLink:
    """A removed row's `dup_of`, `dup_similarity`, reject reason and detail."""

    dup_of: str
    similarity: float
    reason: str
    detail: str


@dataclass
class _MediaStep:
    """One modality's near-duplicate step of the deduped stage: how its items are fingerprinted and
    matched, where its index lives, and the fingerprints gathered so far."""

    modality: str
    index: str
    code: str
    section: str
    fingerprint: str
    matcher: MediaMatcher
    schema: pa.Schema
    unit_column: str
    fingerprinter: VideoFingerprinter | AudioFingerprinter | None = None
    hashes: ShardMedia = field(default_factory=ShardMedia)
    paths: list[str] = field(default_factory=list)


def _media_steps(spec: VersionSpec) -> list[_MediaStep]:
    """The enabled media near-dedup steps of a spec, images, videos, then sounds."""
    steps = []
    image, video, audio = spec.dedup.image, spec.dedup.video, spec.dedup.audio
    if image.enabled:
        steps.append(
            _MediaStep(
                "image",
                IMAGE_HASHES,
                REJECT_IMAGE,
                "dedup.image",
                image_settings_fingerprint(image),
                ImageMatcher(image),
                image_index_schema(image),
                "variant",
            )
        )
    if video.enabled:
        steps.append(
            _MediaStep(
                "video",
                VIDEO_HASHES,
                REJECT_VIDEO,
                "dedup.video",
                video_settings_fingerprint(video),
                VideoMatcher(video),
                video_index_schema(video),
                "frame",
                video_fingerprinter(video),
            )
        )
    if audio.enabled:
        steps.append(
            _MediaStep(
                "audio",
                AUDIO_HASHES,
                REJECT_AUDIO,
                "dedup.audio",
                audio_settings_fingerprint(audio),
                AudioMatcher(audio),
                audio_index_schema(audio),
                "frame",
                audio_fingerprinter(audio),
            )
        )
    return steps


def _compatible_media_paths(lake: Lake, version: str, shard: str | None, step: _MediaStep) -> list[str]:
    """The other shards' files of a media hash index (every shard's when `shard` is None), after checking
    each was built with these settings."""
    paths = list(_index_paths(lake, version, step.index, exclude=shard).values())
    for path in paths:
        metadata = lake.schema(path).metadata or {}
        if metadata.get(MEDIA_FINGERPRINT_KEY) != step.fingerprint.encode():
            raise SpecError(
                f"{lake.url(path)} ({step.index}) was built with other {step.section} settings; materialize "
                "the deduped stage again for every shard of this version, in arrival order"
            )
    return paths


def _earlier_media(lake: Lake, paths: list[str]) -> Iterator[tuple[HashSet, list[str]]]:
    """Each other shard's media hash index in turn: memory follows one shard's index, not the history."""
    for path in paths:
        yield index_hash_set(lake.read_table(path))


def _hash_kept_media(kept: pa.Table, steps: list[_MediaStep], spec: VersionSpec) -> None:
    """Hash the images and fingerprint the videos and sounds that exact dedup kept in this batch."""
    modalities = set(kept.column("modality").to_pylist())
    for step in steps:
        if step.modality not in modalities:
            continue
        chosen = kept.filter(pc.equal(kept.column("modality"), step.modality))
        if step.fingerprinter is None:
            hasher, codes = image_hasher(spec.dedup.image)
            media = [_inline_or_file(row) for row in chosen.select(["media", "uri"]).to_pylist()]
            add_images(step.hashes, hasher, codes, chosen.column("id").to_pylist(), media)
            continue
        for row in chosen.select(["id", "media", "uri"]).to_pylist():
            if row["media"] is not None:
                add_sequence(step.hashes, step.fingerprinter, row["id"], bytes(row["media"]))
                continue
            try:  # large media stay files: stream them instead of reading them whole
                with fsspec.open(str(row["uri"]), "rb") as handle:
                    add_sequence(step.hashes, step.fingerprinter, row["id"], handle)
            except OSError:
                step.hashes.not_hashed += 1


def _inline_or_file(row: dict[str, Any]) -> bytes | None:
    """An item's media bytes, inline or from its file; None when neither can be read."""
    try:
        return media_bytes(row)
    except (OSError, ValueError):
        return None


def _plan_dedup(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    source: str,
    rows: int,
    lookup: Callable[[list[str]], dict[str, str]],
) -> tuple[_DedupPlan, ShardOutcome | None, dict[str, MediaOutcome]]:
    exact = ExactDedup(spec.dedup.exact)
    near_settings = spec.dedup.near
    candidates = ShardSignatures(near_settings, capacity=rows) if near_settings.enabled else None
    near_index = NearIndex(lake, spec.name, near_settings)
    if candidates is not None:  # fail on an incompatible index before signing, not after
        near_index.check(shard)
    steps = _media_steps(spec)
    for step in steps:  # fail on an incompatible index before hashing, not after
        step.paths = _compatible_media_paths(lake, spec.name, shard, step)
    plan = _DedupPlan()
    known: dict[str, str] = {}
    batches = lake.iter_batches(source, BATCH_ROWS, columns=["id", "modality", "text", "media", "uri"])
    for batch in tracked(batches, f"{spec.name}/deduped[{shard}] hashing and signing", rows):
        kept, rejected = exact.run(pa.Table.from_batches([batch]), known, lookup)
        plan.exact.update(
            zip(rejected.column("id").to_pylist(), rejected.column("dup_of").to_pylist(), strict=True)
        )
        if candidates is not None:
            texts = kept.filter(pc.equal(kept.column("modality"), "text"))
            if texts.num_rows:
                candidates.add(
                    texts.column("id").to_pylist(), [t or "" for t in texts.column("text").to_pylist()]
                )
        _hash_kept_media(kept, steps, spec)
    media: dict[str, MediaOutcome] = {}
    for step in steps:
        outcome_of_step = decide(
            step.hashes, step.matcher, _earlier_media(lake, step.paths), step.schema, step.unit_column
        )
        media[step.modality] = outcome_of_step
        plan.media.update((item, (step.code, decision)) for item, decision in outcome_of_step.removed.items())
    if candidates is None:
        return plan, None, media
    outcome = NearDedup(near_settings).decide(candidates, near_index.earlier(shard), shard)
    plan.near = outcome.removed
    return plan, outcome, media


def _apply_dedup(batch: pa.Table, plan: _DedupPlan, exact: ExactDedup) -> tuple[pa.Table, pa.Table]:
    links = [plan.survivor_link(item) for item in batch.column("id").to_pylist()]
    dup_of = [link.dup_of if link else None for link in links]
    similarity = [link.similarity if link else None for link in links]
    reasons = [link.reason if link else None for link in links]
    details = [link.detail if link else None for link in links]
    annotated = batch
    for field_, values in zip(DEDUP_FIELDS, (exact.hashes(batch), dup_of, similarity), strict=True):
        index = annotated.schema.get_field_index(field_.name)
        array = pa.array(values, field_.type)
        annotated = (
            annotated.set_column(index, field_, array)
            if index >= 0
            else annotated.append_column(field_, array)
        )
    is_rejected = pa.array([reason is not None for reason in reasons], pa.bool_())
    rejected = annotated.filter(is_rejected)
    return annotated.filter(pc.invert(is_rejected)), mark_rejected(
        rejected,
        "deduped",
        [r for r in reasons if r is not None],
        [d for r, d in zip(reasons, details, strict=True) if r is not None],
    )


def _check_exact_index(
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


def roll_back_interrupted(journal: ClaimJournal, shard: str, forget: Callable[[str], None]) -> list[str]:
    """Roll back the claims and output of every other shard whose run stopped between starting its claims
    and finishing them. Call it holding the stage's lock: a pending mark seen then has no live writer. The
    caller's own mark needs nothing: its lookups skip its own claims and it rewrites all of them."""
    interrupted = [other for other in journal.pending() if other != shard]
    for other in interrupted:
        forget(other)
        journal.finish(other)
        note(
            f"{journal.version}/{journal.stage}: rolled back shard {other!r}, whose run stopped before it had "
            f"recorded all its claims; materialize {journal.version}/{journal.stage} for it again"
        )
    return interrupted


def forget_dedup_claims(spec: VersionSpec, lake: Lake, shard: str) -> None:
    """Remove a shard's deduped output and every claim it made in the version's dedup indexes."""
    for rejected in (False, True):
        lake.remove(lake.path(spec.name, "deduped", shard, rejected=rejected))
    lake.remove(lake.path(spec.name, DEDUP_INDEX, shard))
    ExactIndex(lake, spec.name).remove(shard)
    NearIndex(lake, spec.name, spec.dedup.near).remove(shard)
    for index_name in (*MEDIA_INDEXES.values(), *SEMANTIC_INDEXES.values()):
        lake.remove(lake.path(spec.name, index_name, shard))


def run_dedup(spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None) -> StageResult:
    """Exact, then near, then (when on) semantic duplicates, within the shard and against every earlier
    shard through the lake's indexes (never their text); an earlier item always wins, so nothing kept
    before is removed later. Semantic dedup embeds text on `runtime`'s device (the CPU without one)."""
    started = time.perf_counter()
    source = _upstream_path(spec, lake, "deduped", shard)
    rows_in = lake.num_rows(source)
    journal = ClaimJournal(lake, spec.name, "deduped")
    with lake.lock(spec.name, DEDUP_INDEX):
        interrupted = roll_back_interrupted(
            journal, shard, lambda other: forget_dedup_claims(spec, lake, other)
        )
        exact_index = ExactIndex(lake, spec.name)
        others = [other for other in exact_index.keys.shards() if other != shard]
        _check_exact_index(lake, spec.name, shard, exact_index)
        plan, outcome, media = _plan_dedup(spec, lake, shard, source, rows_in, exact_index.lookup(shard))
        semantic = _plan_semantic(spec, lake, shard, source, plan, runtime)
        schema = with_fields(lake.schema(source), DEDUP_FIELDS)
        examples = _TextPairs(
            plan.near, "No near duplicates in this shard.", {"similarity": lambda d: f"{d.similarity:.2f}"}
        )
        media_examples = _MediaExamples(plan)
        semantic_examples = _TextPairs(
            plan.semantic,
            "No semantic duplicates in this shard.",
            {"cosine similarity": lambda d: f"{d.similarity:.3f}", "cluster": lambda d: str(d.cluster)},
        )
        exact = ExactDedup(spec.dedup.exact)
        claims: list[pa.Table] = []
        journal.begin(shard)
        with _shard_output(lake, spec.name, "deduped", shard, schema) as output:
            batches = lake.iter_batches(source, BATCH_ROWS)
            for batch in tracked(batches, f"{spec.name}/deduped[{shard}] writing", rows_in):
                kept, rejected = _apply_dedup(pa.Table.from_batches([batch]), plan, exact)
                examples.collect(kept, rejected)
                media_examples.collect(rejected)
                semantic_examples.collect(kept, rejected)
                output.write(kept, rejected)
                claims.append(
                    kept.select(["content_hash", "id", "modality"]).append_column(
                        "shard", pa.array([shard] * kept.num_rows, pa.string())
                    )
                )
        crash_point("deduped", "after_output", shard)
        index = pa.concat_tables(
            [
                INDEX_SCHEMA.empty_table(),
                *(claim.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA) for claim in claims),
            ]
        )
        lake.write_table(lake.path(spec.name, DEDUP_INDEX, shard), index)
        exact_index.write(shard, index.column("content_hash").to_pylist(), index.column("id").to_pylist())
        near_index = NearIndex(lake, spec.name, spec.dedup.near)
        if outcome is not None:
            near_index.write(shard, outcome)
        else:
            near_index.remove(shard)
        for modality, index_name in MEDIA_INDEXES.items():
            if modality in media:
                lake.write_table(lake.path(spec.name, index_name, shard), media[modality].index)
            else:
                lake.remove(lake.path(spec.name, index_name, shard))
        if semantic is not None:
            semantic.write_index(shard)
        else:
            for semantic_index in SEMANTIC_INDEXES.values():
                lake.remove(lake.path(spec.name, semantic_index, shard))
        crash_point("deduped", "after_claims", shard)
        journal.finish(shard)
    exact_total = len(plan.exact)
    own_ids = set(plan.exact) | set(index.column("id").to_pylist()) | set(plan.near) | set(plan.semantic)
    near_total = len(plan.near)
    media_total = len(plan.media)
    return _result(
        spec,
        lake,
        "deduped",
        shard,
        rows_in,
        output,
        started,
        duplicate_rate=round(
            (exact_total + near_total + media_total + len(plan.semantic)) / max(rows_in, 1), 4
        ),
        exact_duplicates=exact_total,
        exact_duplicates_of_other_shards=sum(owner not in own_ids for owner in plan.exact.values()),
        near_duplicates=near_total,
        near_duplicates_of_other_shards=outcome.cross_shard if outcome else 0,
        checked_against_shards=len(others),
        **({"rolled_back_interrupted_shards": interrupted} if interrupted else {}),
        cluster_sizes={
            str(size): count for size, count in sorted((outcome.cluster_sizes if outcome else {}).items())
        },
        example_pairs=examples.markdown(lake, spec.name, shard),
        **_media_counts(media),
        media_example_pairs=media_examples.markdown(),
        **(semantic.metadata(semantic_examples.markdown(lake, spec.name, shard)) if semantic else {}),
    )


@dataclass
class _SemanticModality:
    """One modality's semantic dedup in a shard: its decisions, the index of the items it kept, and what
    it took (vectors computed or reused, centroids fitted or reused)."""

    modality: str
    index: SemanticIndex
    ids: list[str]
    points: np.ndarray
    outcome: SemanticOutcome
    clusters: int
    centroids_fitted: bool
    embeddings: dict[str, Any]
    epsilon: float

    def write_index(self, shard: str) -> None:
        """The shard's kept items, or no file when it kept none."""
        if self.outcome.kept.any():
            self.index.write(shard, self.outcome.index(self.ids, self.points, self.index.fingerprint))
        else:
            self.index.remove(shard)

    def details(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "items_checked": len(self.ids),
            "epsilon": self.epsilon,
            "clusters": self.clusters,
            "centroids": "fitted on this shard" if self.centroids_fitted else "reused",
            "largest_cluster_in_shard": max(outcome.cluster_sizes.values(), default=0),
            "earlier_items_compared": outcome.earlier_compared,
            "embeddings": self.embeddings,
        }


@dataclass
class _SemanticStep:
    """The semantic step of a shard's dedup: one part per modality of `dedup.semantic.modalities`, each in
    its own embedding space (centroids, index folder, fingerprint)."""

    lake: Lake
    version: str
    parts: list[_SemanticModality]

    def write_index(self, shard: str) -> None:
        """Each modality's index file for the shard; index files of modalities now off are removed."""
        for part in self.parts:
            part.write_index(shard)
        on = {part.modality for part in self.parts}
        for modality, folder in SEMANTIC_INDEXES.items():
            if modality not in on:
                self.lake.remove(self.lake.path(self.version, folder, shard))

    def metadata(self, examples: str) -> dict[str, Any]:
        """Totals over the modalities, and each modality's details (`semantic_dedup` for text,
        `<modality>_semantic_dedup` for the others)."""
        out: dict[str, Any] = {
            "semantic_duplicates": sum(len(part.outcome.removed) for part in self.parts),
            "semantic_duplicates_of_other_shards": sum(part.outcome.cross_shard for part in self.parts),
            "semantic_clusters_touched": sum(part.outcome.clusters_touched for part in self.parts),
            "semantic_duplicates_by_modality": {
                part.modality: len(part.outcome.removed) for part in self.parts
            },
        }
        for part in self.parts:
            key = "semantic_dedup" if part.modality == "text" else f"{part.modality}_semantic_dedup"
            out[key] = part.details()
        out["semantic_example_pairs"] = examples
        return out


def _plan_semantic(
    spec: VersionSpec, lake: Lake, shard: str, source: str, plan: _DedupPlan, runtime: ModelRuntime | None
) -> _SemanticStep | None:
    """Semantic dedup of the items of each modality of `dedup.semantic.modalities` that exact and near
    dedup kept, against the items earlier shards kept in the same clusters of the same modality; records
    its decisions in `plan`. None when it is off."""
    settings = spec.dedup.semantic
    if not settings.enabled:
        return None
    modalities = [modality for modality in SEMANTIC_INDEXES if modality in settings.modalities]
    sources = [vector_source(modality, settings, runtime) for modality in modalities]
    indexes = [
        SemanticIndex(lake, spec.name, vectors.index, clustering_fingerprint(settings, vectors.model))
        for vectors in sources
    ]
    # fail on a missing model or an incompatible index before embedding, not after
    lookups = [index.earlier(shard) for index in indexes]
    removed = pa.array(sorted(plan.exact.keys() | plan.near.keys() | plan.media.keys()), pa.string())
    parts = [
        _plan_semantic_modality(spec, lake, shard, source, removed, vectors, index, earlier)
        for vectors, index, earlier in zip(sources, indexes, lookups, strict=True)
    ]
    for part in parts:
        plan.semantic.update(part.outcome.removed)
    return _SemanticStep(lake, spec.name, parts)


def _plan_semantic_modality(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    source: str,
    removed: pa.Array,
    vectors: VectorSource,
    index: SemanticIndex,
    earlier: EarlierLookup,
) -> _SemanticModality:
    """Semantic dedup of one modality's items of the shard that are not in `removed`, read from the shard
    `vectors.batch_rows` rows at a time (images are embedded as they arrive, never all held at once)."""
    settings = spec.dedup.semantic
    names = set(lake.schema(source).names)
    columns = sorted({"modality", *(name for name in vectors.columns if name in names)})

    def items() -> Iterator[pa.Table]:
        for batch in lake.iter_batches(source, vectors.batch_rows, columns=columns):
            chosen = pc.and_(
                pc.equal(batch.column("modality"), vectors.modality),
                pc.invert(pc.is_in(batch.column("id"), removed)),
            )
            yield pa.Table.from_batches([batch]).filter(chosen)

    all_ids, embedded = vectors.vectors(lake, spec.name, shard, items())
    ids = [item for item, usable in zip(all_ids, embedded.embedded, strict=True) if usable]
    points = embedded.vectors[embedded.embedded]
    centroids, fitted = version_centroids(lake, spec.name, settings, vectors, ids, points)
    outcome = SemanticDedup(settings).decide(ids, points, centroids, earlier, modality=vectors.modality)
    return _SemanticModality(
        vectors.modality,
        index,
        ids,
        points,
        outcome,
        len(centroids),
        fitted and len(centroids) > 0,
        {"model": embedded.model, "computed": embedded.computed, "reused": embedded.reused},
        settings.epsilon_of(vectors.modality),
    )


def _media_counts(media: dict[str, MediaOutcome]) -> dict[str, int]:
    """Per media modality: near duplicates removed, of them duplicates of other shards' items, and items
    without a usable fingerprint (undecodable, flat, silent or too short); zeros where the step is off."""
    counts: dict[str, int] = {}
    for modality in MEDIA_INDEXES:
        outcome = media.get(modality)
        counts[f"{modality}_near_duplicates"] = len(outcome.removed) if outcome else 0
        counts[f"{modality}_near_duplicates_of_other_shards"] = outcome.cross_shard if outcome else 0
        counts[f"{modality}_not_fingerprinted"] = outcome.not_hashed if outcome else 0
    return counts


class _MediaExamples:
    """A few removed near-duplicate images, videos and sounds with the item each duplicates and why."""

    def __init__(self, plan: _DedupPlan, count: int = 5) -> None:
        chosen: dict[str, MediaDecision] = {}
        per_code: Counter[str] = Counter()
        for item, (code, decision) in plan.media.items():
            if per_code[code] < count:
                chosen[item] = decision
                per_code[code] += 1
        self.chosen = chosen
        self.uris: dict[str, str] = {}

    def collect(self, rejected: pa.Table) -> None:
        for item, uri in zip(
            rejected.column("id").to_pylist(), rejected.column("uri").to_pylist(), strict=True
        ):
            if item in self.chosen:
                self.uris[item] = uri

    def markdown(self) -> str:
        if not self.chosen:
            return "No near-duplicate images, videos or sounds in this shard."
        lines = ["| removed | kept (dup_of) | similarity | why |", "| --- | --- | ---: | --- |"]
        for item, decision in self.chosen.items():
            lines.append(
                f"| {_cell(self.uris.get(item, item))} | `{decision.dup_of}` | {decision.similarity:.2f} "
                f"| {_cell(decision.detail)} |"
            )
        return "\n".join(lines)


class _TextPairs:
    """A few removed text items side by side with the item each duplicates, so a person can judge the
    threshold; `columns` adds cells per pair (similarity, cluster)."""

    def __init__(
        self, decisions: dict[str, Any], empty: str, columns: dict[str, Callable[[Any], str]], count: int = 5
    ) -> None:
        self.chosen = dict(list(decisions.items())[:count])
        self.empty, self.columns = empty, columns
        self.texts: dict[str, str] = {}
        self.wanted = set(self.chosen) | {decision.dup_of for decision in self.chosen.values()}

    def collect(self, *tables: pa.Table) -> None:
        for table in tables:
            for item, text in zip(
                table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True
            ):
                if item in self.wanted:
                    self.texts[item] = text or ""

    def markdown(self, lake: Lake, version: str, shard: str) -> str:
        if not self.chosen:
            return self.empty
        holders: dict[str, set[str]] = {}
        for decision in self.chosen.values():
            if decision.dup_of not in self.texts and decision.shard and decision.shard != shard:
                holders.setdefault(decision.shard, set()).add(decision.dup_of)
        if holders:
            self.texts.update(_earlier_texts(lake, version, holders))
        lines = [
            "| removed | kept (dup_of) | " + " | ".join(self.columns) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in self.columns) + " |",
        ]
        for item, decision in self.chosen.items():
            kept = self.texts.get(decision.dup_of, "(not found)")
            cells = " | ".join(cell(decision) for cell in self.columns.values())
            lines.append(f"| {_cell(self.texts.get(item, ''))} | {_cell(kept)} | {cells} |")
        return "\n".join(lines)


def _earlier_texts(lake: Lake, version: str, holders: dict[str, set[str]]) -> dict[str, str]:
    """The texts of a few items of earlier shards, for display, read from the shards that hold them."""
    texts: dict[str, str] = {}
    for other, ids in sorted(holders.items()):
        path = lake.path(version, "deduped", other)
        if not lake.exists(path):
            continue
        for batch in lake.iter_batches(path, BATCH_ROWS, columns=["id", "text"]):
            for item, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                if item in ids:
                    texts[item] = text or ""
    return texts


def _cell(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def run_filter(spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None) -> StageResult:
    """The spec's filter chain per modality; rejected rows keep every score computed before rejection.
    Filters that keep per-item results (CLIP image embeddings) save them once the shard is written; what
    they report, and the optional filters skipped, go into the stage's metadata."""
    started = time.perf_counter()
    source = _upstream_path(spec, lake, "filtered", shard)
    context = FilterContext(lake=lake, version=spec.name, shard=shard)
    chain = build_chain(spec.filters, runtime, context)
    rows_in = lake.num_rows(source)
    schema = chain.output_schema(lake.schema(source))
    with _shard_output(lake, spec.name, "filtered", shard, schema) as output:
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
    return _result(
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


def run_select(spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None) -> StageResult:
    """The spec's selection (`where`, quota groups, a strategy) under the version budget. Shards claim the
    budget first come, first served: under the version's selection lock, a shard sees what the shards
    selected before it took and plans within what is left. Embeddings, where the strategy needs them, are
    computed before the lock on `runtime`'s device (the CPU without one) and kept in the lake."""
    started = time.perf_counter()
    source = _upstream_path(spec, lake, "selected", shard)
    selector = Selector(spec.select)
    rows_in = lake.num_rows(source)
    prepared = selector.prepare_shard(lake, spec.name, shard, source, runtime)
    with lake.lock(spec.name, "selection"):
        plan = selector.plan_shard(prepared, lake, spec.name, shard)
        schema = with_fields(lake.schema(source), SELECT_FIELDS)
        with _shard_output(lake, spec.name, "selected", shard, schema) as output:
            for batch in lake.iter_batches(source, BATCH_ROWS):
                output.write(*plan.apply(pa.Table.from_batches([batch])))
    return _result(spec, lake, "selected", shard, rows_in, output, started, **plan.metadata())


def _candidate(
    recipe: Recipe, parent: dict[str, Any], outcome: Outcome, shard: str, seed_key: str
) -> dict[str, Any]:
    """One synthetic candidate row, of the recipe's modality, from its outcome for `parent`, validated like
    raw data; an unusable outcome becomes a row with its reject reason (and the recipe's output as its
    text). `meta` records the parent's uri and the key that seeded the recipe for this parent."""
    position = f"synth:{recipe.label}:{parent['id']}"
    uri = f"synth://{recipe.label}/{parent['id']}"
    meta: dict[str, Any] = {"parent_uri": parent["uri"], "seed": seed_key}
    if isinstance(outcome, Unusable):
        record = RawRecord(
            position=position,
            uri=uri,
            modality=recipe.modality,
            text=outcome.text if outcome.text is not None else parent.get("text"),
            meta=meta,
            reject_code=outcome.reason,
            reject_detail=outcome.detail[:300],
        )
    else:
        record = RawRecord(
            position=position,
            uri=uri,
            modality=recipe.modality,
            text=outcome.text,
            media=outcome.media,
            media_format=outcome.media_format,
            meta={**outcome.meta, **meta},
        )
    row = validate_record(record, shard)
    parent_ids = [parent["id"], *outcome.other_parents]
    row.update(synthetic=True, parent_ids=parent_ids, generator=recipe.generator)
    return row


def _candidates(
    recipes: list[Recipe], parents: list[dict[str, Any]], shard: str, spec: VersionSpec
) -> list[tuple[Recipe, dict[str, Any]]]:
    """Every recipe's candidates for the parents it is given (a seeded share of those of its parent
    modality), each recipe run on all its parents at once, with the whole batch as the pool that recipes
    combining two items draw from; in parent order, then recipe order."""
    settings = spec.synthesize
    scores = [sample_score(settings.seed, parent["id"]) for parent in parents]
    made: list[tuple[int, int, Recipe, dict[str, Any]]] = []
    for order, recipe in enumerate(recipes):
        fraction = settings.fraction if recipe.fraction is None else recipe.fraction
        chosen = [
            index
            for index, parent in enumerate(parents)
            if parent["modality"] == recipe.parent_modality and scores[index] < fraction
        ]
        keys = [f"{settings.seed}:{parents[index]['id']}" for index in chosen]
        outcomes = recipe.make_batch([parents[index] for index in chosen], keys, pool=parents)
        for index, key, outcome in zip(chosen, keys, outcomes, strict=True):
            made.append((index, order, recipe, _candidate(recipe, parents[index], outcome, shard, key)))
    made.sort(key=lambda entry: (entry[0], entry[1]))
    return [(recipe, row) for _, _, recipe, row in made]


class _SynthesisTally:
    """Per recipe: candidates generated, admitted and rejected (by reason), and a few candidates side by
    side with their parents for the stage's metadata."""

    def __init__(self, recipes: list[Recipe], samples_per_recipe: int = 2, max_samples: int = 10) -> None:
        self.counts: dict[str, dict[str, Any]] = {
            recipe.label: {"generated": 0, "admitted": 0, "rejected": 0, "rejected_by_reason": {}}
            for recipe in recipes
        }
        self.samples: list[tuple[str, str, str, str]] = []
        self._per_recipe, self._max = samples_per_recipe, max_samples

    def add(
        self,
        made: list[tuple[Recipe, dict[str, Any]]],
        parents: list[dict[str, Any]],
        admitted: pa.Table,
        rejected: list[pa.Table],
    ) -> None:
        outcome = dict.fromkeys(admitted.column("id").to_pylist(), "admitted")
        for table in rejected:
            outcome.update(
                zip(table.column("id").to_pylist(), table.column("reject_reason").to_pylist(), strict=True)
            )
        parent_by_id = {parent["id"]: parent for parent in parents}
        for recipe, row in made:
            counts = self.counts[recipe.label]
            result = outcome[row["id"]]
            counts["generated"] += 1
            if result == "admitted":
                counts["admitted"] += 1
            else:
                counts["rejected"] += 1
                counts["rejected_by_reason"][result] = counts["rejected_by_reason"].get(result, 0) + 1
            shown = sum(sample[0] == recipe.label for sample in self.samples)
            if shown < self._per_recipe and len(self.samples) < self._max:
                parent = parent_by_id[row["parent_ids"][0]]
                self.samples.append((recipe.label, _snippet(parent), _snippet(row), str(result)))

    def markdown(self) -> str:
        if not self.samples:
            return "No synthetic candidates in this shard."
        lines = ["| recipe | parent | synthetic | outcome |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {recipe} | {parent} | {synthetic} | {result} |"
            for recipe, parent, synthetic, result in self.samples
        ]
        return "\n".join(lines)


def _snippet(row: dict[str, Any]) -> str:
    """A table cell for an item: its text, or what its media is when it has none."""
    if row.get("text"):
        return _cell(str(row["text"]), 120)
    media = row.get("media")
    return f"({row['modality']}, {len(media) if media else 0} bytes)"


def run_synthesize(
    spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None
) -> StageResult:
    """Selected real items plus synthetic variants admitted through raw validation, exact dedup, near-duplicate
    text dedup and the same filter chain. Dedup compares a variant with every real item of the version (the
    dedup indexes) and every synthetic item admitted in other shards (the synthesis indexes); a text variant
    may be a near duplicate of its parents and siblings only (`synth/admission.py`); a variant never
    removes a real item. Recipes that run a model use `runtime` (`models.text_generator`, `models.text_to_speech`,
    `models.image_generator`)."""
    journal = ClaimJournal(lake, spec.name, "synthesized")
    with lake.lock(spec.name, SYNTH_INDEX):
        roll_back_interrupted(journal, shard, lambda other: forget_synthetic_claims(spec, lake, other))
        result = _run_synthesize(spec, lake, shard, runtime, journal)
        crash_point("synthesized", "after_claims", shard)
        journal.finish(shard)
        return result


def forget_synthetic_claims(spec: VersionSpec, lake: Lake, shard: str) -> None:
    """Remove a shard's synthesized output and every claim its admitted synthetic items made."""
    for rejected in (False, True):
        lake.remove(lake.path(spec.name, "synthesized", shard, rejected=rejected))
    lake.remove(lake.path(spec.name, SYNTH_INDEX, shard))
    ExactIndex(lake, spec.name, prefix=SYNTH_PREFIX).remove(shard)
    NearIndex(lake, spec.name, spec.dedup.near, prefix=SYNTH_PREFIX).remove(shard)
    for index_name in MEDIA_INDEXES.values():
        lake.remove(lake.path(spec.name, SYNTH_PREFIX + index_name, shard))


def _run_synthesize(
    spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None, journal: ClaimJournal
) -> StageResult:
    started = time.perf_counter()
    source = _upstream_path(spec, lake, "synthesized", shard)
    recipes = [
        recipe
        for recipe in build_recipes(spec.synthesize, runtime)
        if recipe.modality in spec.modalities and recipe.parent_modality in spec.modalities
    ]
    chain = build_chain(spec.filters, runtime)
    dedup = ExactDedup(spec.dedup.exact)
    upstream_schema = lake.schema(source)
    schema = with_fields(chain.output_schema(upstream_schema), SYNTH_FIELDS)
    exact_index = ExactIndex(lake, spec.name)
    synthetic_exact = ExactIndex(lake, spec.name, prefix=SYNTH_PREFIX)
    _check_exact_index(lake, spec.name, "", exact_index)
    _check_exact_index(lake, spec.name, shard, synthetic_exact, SYNTH_INDEX)
    real_claims = exact_index.lookup(None)
    synthetic_claims = synthetic_exact.lookup(shard)

    def lookup(hashes: list[str]) -> dict[str, str]:
        """The smallest id that claimed each hash: a real item of any shard, or a synthetic item of
        another shard."""
        owners = synthetic_claims(hashes)
        for key, owner in real_claims(hashes).items():
            owners[key] = min(owner, owners.get(key, owner))
        return owners

    near_settings = spec.dedup.near
    synthetic_index = NearIndex(lake, spec.name, near_settings, prefix=SYNTH_PREFIX)
    admission = (
        NearAdmission(
            near_settings,
            [
                ("real", NearIndex(lake, spec.name, near_settings).earlier(None)),
                ("synthetic", synthetic_index.earlier(shard)),
            ],
        )
        if near_settings.enabled
        else None
    )
    media_admission = _media_admissions(spec, lake, shard)
    rows_in = lake.num_rows(source)
    generated = 0
    known: dict[str, str] = {}
    claims: list[pa.Table] = []
    tally = _SynthesisTally(recipes)
    journal.begin(shard)
    with _shard_output(lake, spec.name, "synthesized", shard, schema) as output:
        for batch in tracked(
            lake.iter_batches(source, BATCH_ROWS), f"{spec.name}/synthesized[{shard}]", rows_in
        ):
            real = pa.Table.from_batches([batch])
            real = conform(real, with_fields(upstream_schema, SYNTH_FIELDS))
            real = real.set_column(
                real.schema.get_field_index("synthetic"),
                SYNTH_FIELDS[0],
                pa.array([False] * real.num_rows, pa.bool_()),
            )
            real = real.set_column(
                real.schema.get_field_index("parent_ids"),
                SYNTH_FIELDS[1],
                pa.array([[] for _ in range(real.num_rows)], pa.list_(pa.string())),
            )
            output.write(real, rejected_schema(schema).empty_table())
            parents = real.to_pylist()
            made = _candidates(recipes, parents, shard, spec)
            rows = [row for _, row in made]
            generated += len(rows)
            valid, invalid = _split_rows(rows, _CANDIDATE_SCHEMA, "synthesized")
            output.write(schema.empty_table(), invalid)
            admitted, turned_down = _admit(valid, known, lookup, dedup, admission, media_admission, chain)
            output.write(admitted, schema.empty_table())
            for part in turned_down:
                output.write(schema.empty_table(), part)
            tally.add(made, parents, admitted, [invalid, *turned_down])
            claims.append(admitted.select(["content_hash", "id", "shard", "modality"]).cast(INDEX_SCHEMA))
    crash_point("synthesized", "after_output", shard)
    synthetic_claims_table = pa.concat_tables([INDEX_SCHEMA.empty_table(), *claims])
    lake.write_table(lake.path(spec.name, SYNTH_INDEX, shard), synthetic_claims_table)
    synthetic_exact.write(
        shard,
        synthetic_claims_table.column("content_hash").to_pylist(),
        synthetic_claims_table.column("id").to_pylist(),
    )
    near_outcome = admission.outcome(shard) if admission is not None else None
    if near_outcome is not None:
        synthetic_index.write(shard, near_outcome)
    else:
        synthetic_index.remove(shard)
    for index_name in MEDIA_INDEXES.values():
        step_admission = media_admission.get(index_name)
        hashes = step_admission.index() if step_admission is not None else None
        path = lake.path(spec.name, SYNTH_PREFIX + index_name, shard)
        if hashes is not None:
            lake.write_table(path, hashes)
        else:
            lake.remove(path)
    synthetic_kept = output.kept - rows_in
    return _result(
        spec,
        lake,
        "synthesized",
        shard,
        rows_in + generated,
        output,
        started,
        real_items=rows_in,
        synthetic_generated=generated,
        synthetic_admitted=synthetic_kept,
        synthetic_rejected=generated - synthetic_kept,
        synthetic_by_recipe=tally.counts,
        synthetic_samples=tally.markdown(),
    )


_CANDIDATE_SCHEMA = with_fields(RAW_SCHEMA, SYNTH_FIELDS)


def _admit(
    candidates: pa.Table,
    known: dict[str, str],
    lookup: Callable[[list[str]], dict[str, str]],
    dedup: ExactDedup,
    admission: NearAdmission | None,
    media_admission: dict[str, MediaAdmission],
    chain: FilterChain,
) -> tuple[pa.Table, list[pa.Table]]:
    """One batch of valid candidates through exact dedup, near-duplicate admission and the filters:
    (admitted, rejected parts). Only admitted candidates claim their content (in `known`, for later
    batches too): a candidate held back as the exact copy of one that near dedup or a filter then turned
    down goes through again, so an identical variant of another family (or with another caption) still
    gets its own verdict."""
    admitted_parts: list[pa.Table] = []
    rejected_parts: list[pa.Table] = []
    pending: pa.Table | None = candidates
    while pending is not None:
        unique, duplicates = dedup.run(pending, dict(known), lookup)
        unique, near = _admit_near(unique, admission)
        unique, media_near = _admit_media(unique, media_admission)
        admitted, filtered_out = chain.run(unique, stage="synthesized")
        for key, item in zip(
            admitted.column("content_hash").to_pylist(), admitted.column("id").to_pylist(), strict=True
        ):
            known.setdefault(key, item)
        turned_down = pa.concat_tables(
            [near.select(["id"]), media_near.select(["id"]), filtered_out.select(["id"])]
        )
        again = pc.is_in(duplicates.column("dup_of"), turned_down.column("id"))
        again = pc.fill_null(again, False)
        duplicates_kept_out = duplicates.filter(pc.invert(again))
        rejected_parts += [
            mark_rejected(
                duplicates_kept_out,
                "synthesized",
                duplicates_kept_out.column("reject_reason").to_pylist(),
                duplicates_kept_out.column("reject_detail").to_pylist(),
            ),
            near,
            media_near,
            filtered_out,
        ]
        admitted_parts.append(admitted)
        retry = pending.filter(pc.is_in(pending.column("id"), duplicates.filter(again).column("id")))
        pending = retry if retry.num_rows else None
    return pa.concat_tables(admitted_parts), [part for part in rejected_parts if part.num_rows]


def _media_admissions(spec: VersionSpec, lake: Lake, shard: str) -> dict[str, MediaAdmission]:
    """Per enabled media dedup step, by index name: the admission of synthetic items of that modality,
    checked against every real shard's index and the other shards' admitted synthetic items."""
    admissions: dict[str, MediaAdmission] = {}
    for step in _media_steps(spec):
        real = _compatible_media_paths(lake, spec.name, None, step)
        synthetic = list(_index_paths(lake, spec.name, SYNTH_PREFIX + step.index, exclude=shard).values())

        def hash_batch(table: pa.Table, modality: str = step.modality) -> ShardMedia:
            (fresh,) = [item for item in _media_steps(spec) if item.modality == modality]
            _hash_kept_media(table, [fresh], spec)
            return fresh.hashes

        admissions[step.index] = MediaAdmission(
            step.matcher,
            step.schema,
            step.unit_column,
            hash_batch,
            [
                ("real", functools.partial(_earlier_media, lake, real)),
                ("synthetic", functools.partial(_earlier_media, lake, synthetic)),
            ],
        )
    return admissions


def _admit_media(candidates: pa.Table, admissions: dict[str, MediaAdmission]) -> tuple[pa.Table, pa.Table]:
    """Media candidates that match an item other than their parents and siblings, rejected with the media
    dedup's code (`dedup.image`, `dedup.video`, `dedup.audio`), `dup_of` and the similarity."""
    decisions: dict[str, tuple[str, MediaDecision]] = {}
    for step in _MEDIA_CODES:
        admission = admissions.get(step[1])
        chosen = candidates.filter(pc.equal(candidates.column("modality"), step[0]))
        if admission is not None and chosen.num_rows:
            decisions.update(
                (item, (step[2], decision)) for item, decision in admission.check(chosen).items()
            )
    removed = pc.is_in(candidates.column("id"), pa.array(list(decisions), pa.string()))
    rejected = candidates.filter(removed)
    chosen_decisions = [decisions[item] for item in rejected.column("id").to_pylist()]
    rejected = _with_duplicate(rejected, [(d.dup_of, d.similarity) for _, d in chosen_decisions])
    return candidates.filter(pc.invert(removed)), mark_rejected(
        rejected,
        "synthesized",
        [code for code, _ in chosen_decisions],
        [f"{d.detail}, not one of its parents" for _, d in chosen_decisions],
    )


#: Media dedup steps by modality: the index name and the reject code.
_MEDIA_CODES = (
    ("image", IMAGE_HASHES, REJECT_IMAGE),
    ("video", VIDEO_HASHES, REJECT_VIDEO),
    ("audio", AUDIO_HASHES, REJECT_AUDIO),
)


def _with_duplicate(rejected: pa.Table, pairs: list[tuple[str, float]]) -> pa.Table:
    """`rejected` with `dup_of` and `dup_similarity` set from `pairs`, row by row."""
    for name, values in (("dup_of", [p[0] for p in pairs]), ("dup_similarity", [p[1] for p in pairs])):
        field_ = rejected.schema.field(name)
        rejected = rejected.set_column(
            rejected.schema.get_field_index(name), field_, pa.array(values, field_.type)
        )
    return rejected


def _admit_near(candidates: pa.Table, admission: NearAdmission | None) -> tuple[pa.Table, pa.Table]:
    """Text candidates that are near duplicates of an item other than their parents, rejected as
    `dedup.near` with `dup_of` and the estimated similarity; the rest go on to the filters."""
    is_text = pc.equal(candidates.column("modality"), "text")
    texts = candidates.filter(is_text)
    if admission is None or texts.num_rows == 0:
        return candidates, mark_rejected(candidates.slice(0, 0), "synthesized", [], [])
    decisions = admission.check(
        texts.column("id").to_pylist(),
        [text or "" for text in texts.column("text").to_pylist()],
        [list(parents or []) for parents in texts.column("parent_ids").to_pylist()],
    )
    removed = pc.is_in(candidates.column("id"), pa.array(list(decisions), pa.string()))
    rejected = candidates.filter(removed)
    chosen = [decisions[item] for item in rejected.column("id").to_pylist()]
    rejected = _with_duplicate(rejected, [(d.dup_of, d.similarity) for d in chosen])
    details: list[str | None] = [
        f"near duplicate of {d.dup_of} ({d.shard or 'this shard'}, estimated similarity {d.similarity:.2f}), "
        "not one of its parents"
        for d in chosen
    ]
    return candidates.filter(pc.invert(removed)), mark_rejected(
        rejected, "synthesized", [REJECT_NEAR] * rejected.num_rows, details
    )


def run_stage(
    spec: VersionSpec,
    lake: Lake,
    stage: str,
    shard: str,
    source: Path | None = None,
    runtime: ModelRuntime | None = None,
) -> StageResult:
    """Run one stage for one shard. The raw stage needs the landing `source` path; the stages that run
    models (filters, selection embeddings, generation) use `runtime`."""
    if stage == "raw":
        if source is None:
            raise ValueError("the raw stage needs the landing shard's path")
        return run_raw(spec, lake, shard, source)
    if stage == "deduped":
        return run_dedup(spec, lake, shard, runtime)
    if stage == "filtered":
        return run_filter(spec, lake, shard, runtime)
    if stage == "selected":
        return run_select(spec, lake, shard, runtime)
    if stage == "synthesized":
        return run_synthesize(spec, lake, shard, runtime)
    raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
