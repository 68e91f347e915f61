"""Pass one of the deduped stage: which rows of a shard exact, near-duplicate and media dedup remove, and
pass two's `apply_dedup`, which marks them with the kept item they duplicate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.dedup.audio import AudioFingerprinter
from curation_dagster.dedup.exact import EXACT_MEASURE, INDEX_SCHEMA, REJECT_EXACT, ExactDedup
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.image_rule import (
    ImageMatcher,
    add_images,
    image_hasher,
    image_index_schema,
    image_settings_fingerprint,
)
from curation_dagster.dedup.indexes import (
    AUDIO_HASHES,
    IMAGE_HASHES,
    VIDEO_HASHES,
)
from curation_dagster.dedup.key_matches import Found
from curation_dagster.dedup.media import (
    REJECT_AUDIO,
    REJECT_IMAGE,
    REJECT_VIDEO,
    AudioMatcher,
    MediaDecision,
    MediaMatcher,
    MediaOutcome,
    ShardMedia,
    VideoMatcher,
    add_sequence,
    audio_fingerprinter,
    audio_index_schema,
    audio_settings_fingerprint,
    decide,
    video_fingerprinter,
    video_index_schema,
    video_settings_fingerprint,
)
from curation_dagster.dedup.media_index import MediaIndex, MediaPrefetch
from curation_dagster.dedup.near import REJECT_NEAR, NearDecision, NearDedup, ShardOutcome, ShardSignatures
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.dedup.perceptual import VideoFingerprinter
from curation_dagster.dedup.semantic import (
    REJECT_SEMANTIC,
    SemanticDecision,
    describe,
)
from curation_dagster.io.lake import Lake
from curation_dagster.media import media_bytes
from curation_dagster.progress import tracked
from curation_dagster.schema import (
    DEDUP_FIELDS,
    mark_rejected,
)
from curation_dagster.shard_io import (
    BATCH_ROWS,
)
from curation_dagster.spec import VersionSpec


@dataclass
class DedupPlan:
    """Pass one's result: the rows that exact, near, media and semantic dedup remove, by id (what they
    duplicate, how close and why), so memory follows the duplicates, not the shard."""

    exact: dict[str, str] = field(default_factory=dict)
    near: dict[str, NearDecision] = field(default_factory=dict)
    media: dict[str, tuple[str, MediaDecision]] = field(default_factory=dict)
    """Near-duplicate images, videos and sounds: id -> (reject code, decision)."""
    semantic: dict[str, SemanticDecision] = field(default_factory=dict)
    """Semantic duplicates of every modality of `dedup.semantic.modalities` (after exact and near dedup)."""

    def removed(self) -> set[str]:
        """Every item some step removes."""
        return self.exact.keys() | self.near.keys() | self.media.keys() | self.semantic.keys()

    def link(self, item: str) -> DuplicateLink | None:
        """Why `item` is removed, naming the item it duplicates directly; None when it is kept."""
        if item in self.exact:
            owner = self.exact[item]
            return DuplicateLink(
                owner, 1.0, REJECT_EXACT, f"same normalised content as {owner}", EXACT_MEASURE
            )
        if item in self.near:
            near = self.near[item]
            detail = f"near duplicate of {near.dup_of} (similarity {near.similarity:.2f}, {near.measure})"
            return DuplicateLink(near.dup_of, near.similarity, REJECT_NEAR, detail, near.measure)
        if item in self.media:
            code, media = self.media[item]
            return DuplicateLink(media.dup_of, media.similarity, code, media.detail, MEDIA_MEASURES[code])
        if item in self.semantic:
            semantic = self.semantic[item]
            return DuplicateLink(
                semantic.dup_of, semantic.similarity, REJECT_SEMANTIC, describe(semantic), SEMANTIC_MEASURE
            )
        return None

    def survivor_link(self, item: str) -> DuplicateLink | None:
        """`link(item)` with `dup_of` followed to the item that is kept: an exact copy of an item that a
        later step removed points at what that item duplicates, never at a removed item. The similarity
        is the lowest along the way (with its measure), and the detail names each removed item passed."""
        first = self.link(item)
        if first is None:
            return None
        dup_of, similarity, measure = first.dup_of, first.similarity, first.measure
        detail, seen = first.detail, {item}
        while dup_of not in seen and (step := self.link(dup_of)) is not None:
            seen.add(dup_of)
            detail += f"; {dup_of} was removed too: {step.detail}"
            dup_of = step.dup_of
            if step.similarity < similarity:
                similarity, measure = step.similarity, step.measure
        return DuplicateLink(dup_of, similarity, first.reason, detail, measure)


#: `dup_measure` of media and semantic removals (near-duplicate text carries its decision's own).
SEMANTIC_MEASURE = "embedding_cosine"
MEDIA_MEASURES = {REJECT_IMAGE: "image_hash_bits", REJECT_VIDEO: "video_frames", REJECT_AUDIO: "audio_frames"}


@dataclass(frozen=True)
class DuplicateLink:
    """A removed row's `dup_of`, `dup_similarity`, reject reason, detail and `dup_measure` (what the
    similarity is: `exact_content`, a near-duplicate measure of `word_sketch.MEASURES`, ...)."""

    dup_of: str
    similarity: float
    reason: str
    detail: str
    measure: str


@dataclass
class MediaStep:
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
    prefetched: MediaPrefetch | None = None
    """The index entries the shard's hashes probe, searched before the claim lock (`MediaIndex.prefetch`)."""


def media_steps(spec: VersionSpec, every: bool = False) -> list[MediaStep]:
    """The enabled media near-dedup steps of a spec's modalities (`every` step, enabled or not, of any
    modality: what forgetting a shard's claims clears), images, videos, then sounds. A modality the version
    does not hold has no step: the raw stage rejects its items, so its index would only gather empty runs."""
    steps = []
    image, video, audio = spec.dedup.image, spec.dedup.video, spec.dedup.audio

    def runs(settings: Any, modality: str) -> bool:
        return every or (settings.enabled and modality in spec.modalities)

    if runs(image, "image"):
        steps.append(
            MediaStep(
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
    if runs(video, "video"):
        steps.append(
            MediaStep(
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
    if runs(audio, "audio"):
        steps.append(
            MediaStep(
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


def media_index(lake: Lake, version: str, step: MediaStep, prefix: str = "") -> MediaIndex:
    """The step's cross-shard hash index (`prefix` names a second one: `synth_` for admitted synthetic
    items)."""
    return MediaIndex(lake, version, prefix + step.index, step.matcher, step.fingerprint, step.section)


def merge_key_stores(spec: VersionSpec, lake: Lake, lock: str, prefix: str = "") -> int:
    """Merge what the size tiers of the version's key stores (`prefix`: `synth_` for the synthesis
    indexes) call for after a shard's claims, holding the claim lock `lock` only to add each tier to its
    store's manifest (`KeyStore.compact`): the version's other shards go on claiming while it is
    written. Returns the tiers added."""
    stores = [ExactIndex(lake, spec.name, prefix).keys]
    if spec.dedup.near.enabled:
        stores.append(NearIndex(lake, spec.name, spec.dedup.near, prefix).keys)
    stores += [media_index(lake, spec.name, step, prefix).keys for step in media_steps(spec)]
    return sum(store.compact(lambda: lake.lock(spec.name, lock)) for store in stores)


def hash_kept_media(kept: pa.Table, steps: list[MediaStep], spec: VersionSpec) -> None:
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
                step.hashes.unhashed.append(row["id"])


def _inline_or_file(row: dict[str, Any]) -> bytes | None:
    """An item's media bytes, inline or from its file; None when neither can be read."""
    try:
        return media_bytes(row)
    except (OSError, ValueError):
        return None


@dataclass
class ShardHashes:
    """The shard's exact-dedup work that needs no other shard: every item's content hash, the first item
    of each content in row order, and the later items with the same content as an earlier one."""

    unique_ids: list[str] = field(default_factory=list)
    unique_hashes: list[str] = field(default_factory=list)
    unique_modalities: list[str] = field(default_factory=list)
    local_duplicates: dict[str, str] = field(default_factory=dict)
    """Item -> the first item of the shard with the same normalised content."""
    parts: list[np.ndarray] = field(default_factory=list)
    """Every row's content hash, batch by batch as 32-byte hex cells (32 bytes a row), which pass two
    writes instead of normalising and hashing every text again."""

    def add_rows(self, hashes: list[str]) -> None:
        self.parts.append(np.array(hashes, dtype="S32"))

    def of_rows(self, start: int, stop: int) -> pa.Array:
        """The content hashes of rows `start` to `stop` of the shard, as the `content_hash` column."""
        if len(self.parts) != 1:
            self.parts = [np.concatenate(self.parts) if self.parts else np.zeros(0, "S32")]
        return pa.array(self.parts[0][start:stop], pa.binary(32)).cast(pa.string())


@dataclass
class DedupCompute:
    """Everything the deduped stage computes from the shard alone, with no lock held and no other shard
    read: content hashes, MinHash signatures and media hashes of the items that are unique in the shard.
    Deciding against the other shards (`decide_dedup`) is what the claim lock serialises."""

    hashes: ShardHashes
    near: ShardSignatures | None
    media: list[MediaStep]
    near_prefetch: Found | None = None
    """The near-duplicate index entries the shard's band keys probe, searched before the claim lock."""
    exact_prefetch: Found | None = None
    """The exact index entries of the shard's content hashes, searched before the claim lock."""


def compute_dedup(spec: VersionSpec, lake: Lake, shard: str, source: str, rows: int) -> DedupCompute:
    """Pass one, on the shard alone: hashes, within-shard exact duplicates, signatures of the unique text
    items and perceptual hashes of the unique media items; then a first search of the indexes for what
    they probe (`prefetch_claims`), which the claim lock's look-ups complete."""
    exact = ExactDedup(spec.dedup.exact)
    near_settings = spec.dedup.near
    candidates = ShardSignatures(near_settings, capacity=rows) if near_settings.enabled else None
    steps = media_steps(spec)
    hashes = ShardHashes()
    first_of: dict[str, str] = {}
    batches = lake.iter_batches(source, BATCH_ROWS, columns=["id", "modality", "text", "media", "uri"])
    for batch in tracked(batches, f"{spec.name}/deduped[{shard}] hashing and signing", rows):
        table = pa.Table.from_batches([batch])
        unique = np.ones(table.num_rows, dtype=bool)
        columns = (table.column("id").to_pylist(), exact.hashes(table), table.column("modality").to_pylist())
        hashes.add_rows(columns[1])
        for row, (item, key, modality) in enumerate(zip(*columns, strict=True)):
            owner = first_of.setdefault(key, item) if exact.settings.enabled else item
            if owner != item:
                hashes.local_duplicates[item] = owner
                unique[row] = False
            else:
                hashes.unique_ids.append(item)
                hashes.unique_hashes.append(key)
                hashes.unique_modalities.append(modality)
        kept = table.filter(pa.array(unique))
        if candidates is not None:
            texts = kept.filter(pc.equal(kept.column("modality"), "text"))
            if texts.num_rows:
                candidates.add(
                    texts.column("id").to_pylist(), [t or "" for t in texts.column("text").to_pylist()]
                )
        hash_kept_media(kept, steps, spec)
    return prefetch_claims(spec, lake, shard, DedupCompute(hashes, candidates, steps))


def prefetch_claims(spec: VersionSpec, lake: Lake, shard: str, computed: DedupCompute) -> DedupCompute:
    """Search the exact, near-duplicate and media indexes for every key the shard probes, with no lock
    held: under the claim lock, `decide_dedup` then only searches the shards that claimed in between."""
    if spec.dedup.exact.enabled and computed.hashes.unique_hashes:
        computed.exact_prefetch = ExactIndex(lake, spec.name).prefetch(shard, computed.hashes.unique_hashes)
    for step in computed.media:
        if step.hashes.ids:
            step.prefetched = media_index(lake, spec.name, step).prefetch(step.hashes.hash_set(), shard)
    if computed.near is not None and len(computed.near.ids):
        near_index = NearIndex(lake, spec.name, spec.dedup.near)
        computed.near_prefetch = near_index.keys.prefetch(computed.near.keys, shard)
    return computed


def decide_dedup(
    spec: VersionSpec, lake: Lake, shard: str, computed: DedupCompute, exact_index: ExactIndex
) -> tuple[DedupPlan, ShardOutcome | None, dict[str, MediaOutcome]]:
    """Pass one's decisions against every other shard's claims (hold the version's dedup lock): exact
    duplicates of claimed content, then near duplicates and media duplicates among what is left. An item
    claimed earlier always wins, so nothing kept before is removed later. `computed`'s near-duplicate
    signatures are used up (set to None)."""
    exact = {}
    if spec.dedup.exact.enabled:
        exact = _exact_decisions(computed.hashes, exact_index.lookup(shard, computed.exact_prefetch))
    computed.exact_prefetch = None
    plan = DedupPlan(exact=exact)
    removed = set(plan.exact)
    media: dict[str, MediaOutcome] = {}
    for step in computed.media:
        outcome = decide(
            step.hashes.without(removed),
            step.matcher,
            media_index(lake, spec.name, step).lookup(shard, step.prefetched),
            step.schema,
            step.unit_column,
        )
        media[step.modality] = outcome
        plan.media.update((item, (step.code, decision)) for item, decision in outcome.removed.items())
    if computed.near is None:
        return plan, None, media
    near_index = NearIndex(lake, spec.name, spec.dedup.near)
    near_index.check(shard)
    signatures, prefetched = computed.near.without(removed), computed.near_prefetch
    # The shard's signatures and prefetched entries are not needed past the decision: let them go before
    # the index is written (a large shard's keys and signatures are several hundred megabytes).
    computed.near = computed.near_prefetch = None
    outcome_near = NearDedup(spec.dedup.near).decide(signatures, near_index.earlier(shard, prefetched), shard)
    del signatures, prefetched
    plan.near = outcome_near.removed
    return plan, outcome_near, media


def shard_claims(hashes: ShardHashes, plan: DedupPlan, shard: str) -> pa.Table:
    """The shard's exact claims (`INDEX_SCHEMA`): the content hash and id of every item it keeps, in row
    order; only items unique in the shard can be kept."""
    removed = plan.removed()
    kept = [position for position, item in enumerate(hashes.unique_ids) if item not in removed]
    return pa.table(
        {
            "content_hash": pa.array([hashes.unique_hashes[p] for p in kept], pa.string()),
            "id": pa.array([hashes.unique_ids[p] for p in kept], pa.string()),
            "shard": pa.array([shard] * len(kept), pa.string()),
            "modality": pa.array([hashes.unique_modalities[p] for p in kept], pa.string()),
        },
        schema=INDEX_SCHEMA,
    )


def _exact_decisions(hashes: ShardHashes, lookup: Callable[[list[str]], dict[str, str]]) -> dict[str, str]:
    """Item -> the item it duplicates exactly: content another shard claimed goes to that claim (its
    smallest id); a repeat within the shard goes to the shard's first item, or to the other shard's claim
    when that first item lost it too."""
    claimed: dict[str, str] = {}
    for start in range(0, len(hashes.unique_hashes), BATCH_ROWS):
        claimed.update(lookup(hashes.unique_hashes[start : start + BATCH_ROWS]))
    key_of = dict(zip(hashes.unique_ids, hashes.unique_hashes, strict=True))
    decisions = {
        item: claimed[key]
        for item, key in zip(hashes.unique_ids, hashes.unique_hashes, strict=True)
        if key in claimed
    }
    for item, first in hashes.local_duplicates.items():
        decisions[item] = claimed.get(key_of[first], first)
    return decisions


def apply_dedup(batch: pa.Table, plan: DedupPlan, content_hashes: pa.Array) -> tuple[pa.Table, pa.Table]:
    """Pass two on one batch: kept rows, and removed rows marked with what they duplicate; every row gets
    its `content_hash` (`content_hashes`, from pass one) and dedup columns."""
    links = [plan.survivor_link(item) for item in batch.column("id").to_pylist()]
    dup_of = [link.dup_of if link else None for link in links]
    similarity = [link.similarity if link else None for link in links]
    measures = [link.measure if link else None for link in links]
    reasons = [link.reason if link else None for link in links]
    details = [link.detail if link else None for link in links]
    annotated = batch
    columns = (content_hashes, dup_of, similarity, measures)
    for field_, values in zip(DEDUP_FIELDS, columns, strict=True):
        index = annotated.schema.get_field_index(field_.name)
        array = values if isinstance(values, pa.Array) else pa.array(values, field_.type)
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
