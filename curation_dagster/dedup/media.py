"""Near-duplicate images, videos and sounds of one shard: against other shards through their hash index
in the lake, then within the shard, earliest first.

Each shard's index (`image_hashes`, `video_hashes`, `audio_hashes`) holds the hashes of the items it
kept, never their media. An item is removed when it matches an item of another shard's index, else when it matches an
earlier row of its own shard that was kept; so an item kept once is never removed later, and every
removal names a kept item (`dup_of`), with their similarity. Unlike text, matches do not chain far: with
a distance threshold, A ~ B ~ C does not make A and C alike. Videos and sounds are compared with kept
items only. Images go one step further, because copies of one picture are often further from each other
than from their original (a watermarked copy and a rotated one): an image removed as the direct match of
a kept image is indexed too, as that image's copy (`copy_of`), and a later image that matches the copy is
removed as a duplicate of the kept image. A copy of a copy is not indexed, so a removed image is always
within two matches of the image it names, and a slow series of small changes (the frames of a pan) is
not swallowed whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.audio import AudioFingerprinter
from curation_dagster.dedup.perceptual import (
    VideoFingerprinter,
    near_pairs,
)
from curation_dagster.spec import AudioDedupSettings, VideoDedupSettings

REJECT_IMAGE: Final = "dedup.image"
REJECT_VIDEO: Final = "dedup.video"
REJECT_AUDIO: Final = "dedup.audio"
#: Parquet schema metadata key holding the fingerprint of the settings an index file was built with.
MEDIA_FINGERPRINT_KEY: Final = b"curation.media_settings"
#: What a match points at: a row of this shard, or an id.
Other = TypeVar("Other", int, str)
#: Rows of a shard decided together: each batch is compared with the kept rows before it and within
#: itself, so a shard of many copies of one picture costs copies x kept, never copies squared.
DECIDE_BATCH: Final = 2048
#: Sampled frames two videos must share at least: one frame is a picture, not a video.
MIN_MATCHED_FRAMES: Final = 2


def video_settings_fingerprint(settings: VideoDedupSettings) -> str:
    """A hash of the settings that change stored frame hashes."""
    relevant = settings.model_dump(
        mode="json", include={"frames_per_second", "max_frames", "hash_size", "min_detail"}
    )
    return settings_digest({"video": relevant, "layout": 1})


def audio_settings_fingerprint(settings: AudioDedupSettings) -> str:
    """A hash of the settings that change stored window hashes."""
    relevant = settings.model_dump(
        mode="json", include={"frames_per_second", "window_s", "max_frames", "min_level_db"}
    )
    return settings_digest({"audio": relevant, "layout": 1})


def settings_digest(data: dict[str, Any]) -> str:
    """A short digest of settings (with a layout number) that names what an index was built with."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def video_index_schema(settings: VideoDedupSettings) -> pa.Schema:
    """`video_hashes/<shard>.parquet`: one row per informative sampled frame of a kept video, with the
    number of such frames of the video (the denominator of the matching share)."""
    return _frames_schema(video_settings_fingerprint(settings))


def audio_index_schema(settings: AudioDedupSettings) -> pa.Schema:
    """`audio_hashes/<shard>.parquet`: one row per window of a kept sound that is not silence."""
    return _frames_schema(audio_settings_fingerprint(settings))


def _frames_schema(fingerprint: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
            pa.field("frame", pa.int32(), nullable=False),
            pa.field("hash", pa.uint64(), nullable=False),
            pa.field("frames", pa.int32(), nullable=False),
        ],
        metadata={MEDIA_FINGERPRINT_KEY: fingerprint.encode()},
    )


@dataclass
class HashSet:
    """Hashes of a set of items, flattened: `item[i]` owns `hash[i]`; `unit[i]` is the variant code of
    an image hash or the frame (window) number of a video's (sound's) hash; `units[item]` counts an
    item's hashes, the frames of a video or sound; `colour[item]` is an image's mean colour (zeros for
    videos and sounds)."""

    item: np.ndarray
    unit: np.ndarray
    hash: np.ndarray
    units: np.ndarray
    colour: np.ndarray | None = None
    """`(items, 3)` float32; None reads as zeros."""
    via: list[str | None] | None = None
    """Per item of an index file: its own id when it is an indexed copy (its name is then the kept
    image it copies), else None."""

    def __post_init__(self) -> None:
        if self.colour is None:
            self.colour = np.zeros((len(self.units), 3), dtype=np.float32)

    @classmethod
    def empty(cls) -> HashSet:
        return cls(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64)
        )

    def select(self, items: np.ndarray) -> HashSet:
        """The hashes of `items` (positions), renumbered 0.. in the order given."""
        assert self.colour is not None
        position = np.full(len(self.units), -1, dtype=np.int64)
        position[items] = np.arange(len(items))
        keep = position[self.item] >= 0
        via = [self.via[item] for item in items.tolist()] if self.via is not None else None
        return HashSet(
            position[self.item[keep]],
            self.unit[keep],
            self.hash[keep],
            self.units[items],
            self.colour[items],
            via,
        )


@dataclass
class Match:
    """Item pairs that match: query position, target position, similarity in [0, 1], and per pair the
    query and target unit that decided it (image variants; -1 for videos and sounds)."""

    query: np.ndarray
    target: np.ndarray
    similarity: np.ndarray
    query_unit: np.ndarray
    target_unit: np.ndarray

    @classmethod
    def empty(cls) -> Match:
        zeros = np.zeros(0, np.int64)
        return cls(zeros, zeros, np.zeros(0), zeros, zeros)


class MediaMatcher:
    """Decides which items of two hash sets match; the base of the image, video and audio rules."""

    bits: int
    max_distance: int
    copies: bool = False
    """Whether an item removed as the direct match of a kept item is indexed as its copy."""

    def match(self, queries: HashSet, targets: HashSet) -> Match:
        """The pairs of a query item and a target item that match, each pair once."""
        raise NotImplementedError

    def describe(self, similarity: float, query_unit: int, target_unit: int, dup_of: str) -> str:
        """The `reject_detail` of an item removed as a duplicate of `dup_of`."""
        raise NotImplementedError


class SequenceMatcher(MediaMatcher):
    """Two videos (or sounds) match when at least `min_matching_share` of the informative sampled frames
    (windows) of one are within `max_distance` bits of some frame of the other, in any order, and neither
    has more frames without a match than a trim allows (the larger of 1 - `min_matching_share` of its
    frames and `max_trim_s` seconds): re-encodes, resizes, frame-rate changes and trims match; a few
    seconds taken from a long video, or a single frame, do not. Symmetric, like the image rule. Their
    similarity is the smaller of the two shares."""

    noun = "video"
    frames = "sampled frames"

    def __init__(self, settings: VideoDedupSettings | AudioDedupSettings) -> None:
        self.bits = settings.hash_size**2 if isinstance(settings, VideoDedupSettings) else 64
        self.max_distance = settings.max_distance
        self.min_share = settings.min_matching_share
        self.trim_frames = settings.max_trim_s * settings.frames_per_second

    def match(self, queries: HashSet, targets: HashSet) -> Match:
        q, t, _ = near_pairs(queries.hash, targets.hash, self.max_distance, self.bits)
        if not len(q):
            return Match.empty()
        pair_q, pair_t = queries.item[q], targets.item[t]
        width = np.int64(max(len(targets.units), 1))
        keys, inverse = np.unique(pair_q * width + pair_t, return_inverse=True)
        matched_q = _distinct_counts(inverse, q, len(keys))
        matched_t = _distinct_counts(inverse, t, len(keys))
        query_item, target_item = keys // width, keys % width
        frames_q = np.maximum(queries.units[query_item], 1)
        frames_t = np.maximum(targets.units[target_item], 1)
        share_q, share_t = matched_q / frames_q, matched_t / frames_t
        keep = (
            (np.maximum(share_q, share_t) >= self.min_share)
            & (frames_q - matched_q <= np.maximum((1 - self.min_share) * frames_q, self.trim_frames))
            & (frames_t - matched_t <= np.maximum((1 - self.min_share) * frames_t, self.trim_frames))
            & (np.minimum(matched_q, matched_t) >= MIN_MATCHED_FRAMES)
        )
        minus = np.full(int(keep.sum()), -1, dtype=np.int64)
        similarity = np.minimum(share_q, share_t)[keep]
        return Match(query_item[keep], target_item[keep], similarity, minus, minus)

    def describe(self, similarity: float, query_unit: int, target_unit: int, dup_of: str) -> str:
        return (
            f"near-duplicate {self.noun} of {dup_of}: at least {similarity:.0%} of the {self.frames} of "
            f"each match those of the other (hash distance <= {self.max_distance} of {self.bits})"
        )


class VideoMatcher(SequenceMatcher):
    """The sequence rule on frame pHashes (`dedup.video`)."""

    noun = "video"


class AudioMatcher(SequenceMatcher):
    """The sequence rule on spectral window hashes (`dedup.audio`)."""

    noun = "sound"
    frames = "windows"


def _distinct_counts(group: np.ndarray, member: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the number of distinct `member` values."""
    pairs = np.unique(group.astype(np.int64) * (int(member.max()) + 1) + member)
    return np.bincount(pairs // (int(member.max()) + 1), minlength=groups)


@dataclass
class MediaDecision:
    """Why a row is removed: the kept item it matches, their similarity and a short human detail."""

    dup_of: str
    similarity: float
    detail: str


@dataclass
class EarlierMatches:
    """What the other shards' index returned for this shard's items: per match, the item's position
    here, the matched item's id and the decisive units."""

    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)
    query_unit: list[int] = field(default_factory=list)
    target_unit: list[int] = field(default_factory=list)
    via: list[str | None] = field(default_factory=list)
    """The indexed copy that matched, when the match is with a copy of `ids`' item."""

    def add(self, match: Match, target_ids: Sequence[str], via: Sequence[str | None] | None = None) -> None:
        targets = match.target.tolist()
        self.rows.extend(match.query.tolist())
        self.ids.extend(target_ids[index] for index in targets)
        self.similarity.extend(match.similarity.tolist())
        self.query_unit.extend(match.query_unit.tolist())
        self.target_unit.extend(match.target_unit.tolist())
        if via is None:
            self.via.extend([None] * len(targets))
        else:
            self.via.extend(via[index] for index in targets)


@dataclass
class MediaOutcome:
    """Decisions for one modality of a shard, the index rows of its kept items, and counts."""

    removed: dict[str, MediaDecision]
    index: pa.Table
    not_hashed: int
    cross_shard: int
    checked: int


@dataclass
class ShardMedia:
    """Hashes of one modality of a shard, gathered batch by batch during the exact-dedup pass."""

    ids: list[str] = field(default_factory=list)
    items: list[np.ndarray] = field(default_factory=list)
    units: list[np.ndarray] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    colours: list[np.ndarray] = field(default_factory=list)
    unhashed: list[str] = field(default_factory=list)
    """Items that could not be hashed (undecodable, or without an informative frame): counted, not indexed."""

    @property
    def not_hashed(self) -> int:
        return len(self.unhashed)

    def without(self, removed: set[str]) -> ShardMedia:
        """These hashes but those of `removed` items: the items another dedup step removed after hashing."""
        if not removed.intersection(self.ids) and not removed.intersection(self.unhashed):
            return self
        kept = ShardMedia(unhashed=[item for item in self.unhashed if item not in removed])
        for position, item_id in enumerate(self.ids):
            if item_id not in removed:
                kept.add(item_id, self.units[position], self.hashes[position], self.colours[position])
        return kept

    def add(
        self, item_id: str, units: np.ndarray, hashes: np.ndarray, colour: np.ndarray | None = None
    ) -> None:
        position = len(self.ids)
        self.ids.append(item_id)
        self.items.append(np.full(len(hashes), position, dtype=np.int64))
        self.units.append(units.astype(np.int64))
        self.hashes.append(hashes.astype(np.uint64))
        self.counts.append(len(hashes))
        self.colours.append(np.zeros(3, np.float32) if colour is None else colour.astype(np.float32))

    def hash_set(self) -> HashSet:
        if not self.ids:
            return HashSet.empty()
        return HashSet(
            np.concatenate(self.items),
            np.concatenate(self.units),
            np.concatenate(self.hashes),
            np.array(self.counts, dtype=np.int64),
            np.stack(self.colours),
        )


def add_sequence(
    shard: ShardMedia, fingerprinter: VideoFingerprinter | AudioFingerprinter, item_id: str, source: Any
) -> None:
    """Fingerprint one video or sound into `shard`; one that cannot be decoded or has no informative
    frame is counted, not indexed."""
    import av
    import soundfile

    try:
        fingerprint = fingerprinter.fingerprint(source)
    except (av.FFmpegError, soundfile.LibsndfileError, ValueError, OSError, IndexError):
        shard.unhashed.append(item_id)
        return
    frames = np.nonzero(fingerprint.informative)[0]
    if not len(frames):
        shard.unhashed.append(item_id)
        return
    shard.add(item_id, frames, fingerprint.hashes[frames])


def video_fingerprinter(settings: VideoDedupSettings) -> VideoFingerprinter:
    """The video fingerprinter the settings describe."""
    return VideoFingerprinter(
        settings.frames_per_second, settings.max_frames, settings.hash_size, settings.min_detail
    )


def audio_fingerprinter(settings: AudioDedupSettings) -> AudioFingerprinter:
    """The audio fingerprinter the settings describe."""
    return AudioFingerprinter(
        settings.frames_per_second, settings.window_s, settings.max_frames, settings.min_level_db
    )


def index_hash_set(table: pa.Table) -> tuple[HashSet, list[str]]:
    """An index file's rows as a hash set and, per item, the id a match with it names: its own, or for
    an indexed copy the kept image it copies (`HashSet.via` then holds the copy's own id)."""
    ids = table.column("id").combine_chunks()
    if not isinstance(ids, pa.DictionaryArray):
        ids = ids.dictionary_encode()
    indices = ids.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = ids.dictionary.to_pylist()
    unit_column = "variant" if "variant" in table.column_names else "frame"
    units = np.bincount(indices, minlength=len(names)).astype(np.int64)
    if "frames" in table.column_names:
        units = np.zeros(len(names), dtype=np.int64)
        units[indices] = table.column("frames").to_numpy().astype(np.int64)
    colour = np.zeros((len(names), 3), dtype=np.float32)
    via: list[str | None] | None = None
    if "colour" in table.column_names:
        values = table.column("colour").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        colour[indices] = values.reshape(-1, 3)
    if "copy_of" in table.column_names:
        copy_of: list[str | None] = [None] * len(names)
        for index, kept in zip(indices.tolist(), table.column("copy_of").to_pylist(), strict=True):
            copy_of[index] = kept
        via = [name if kept is not None else None for name, kept in zip(names, copy_of, strict=True)]
        names = [kept if kept is not None else name for name, kept in zip(names, copy_of, strict=True)]
    hash_set = HashSet(
        item=indices,
        unit=table.column(unit_column).to_numpy().astype(np.int64),
        hash=table.column("hash").to_numpy().astype(np.uint64),
        units=units,
        colour=colour,
        via=via,
    )
    return hash_set, names


class EarlierMedia(Protocol):
    """The other shards' indexed items a shard is checked against (`media_index.MediaLookup`)."""

    @property
    def shards(self) -> int:
        """How many shards the look-up covers."""
        ...

    def candidates(self, queries: HashSet) -> Iterator[tuple[HashSet, list[str]]]:
        """Per shard, every hash of the items that may match one of `queries`, and the shard's ids."""
        ...


def decide(
    shard: ShardMedia,
    matcher: MediaMatcher,
    earlier: EarlierMedia,
    schema: pa.Schema,
    unit_column: str,
) -> MediaOutcome:
    """Earliest wins: remove items that match another shard's indexed item, then, batch by batch in row
    order, items that match an indexed earlier row of this shard. Returns the index of the kept items and,
    for a matcher that indexes copies, of the items removed as direct matches of a kept item."""
    hashes = shard.hash_set()
    count = len(shard.ids)
    checked = earlier.shards
    removed, indexed = _other_shards(shard, hashes, matcher, earlier)
    cross_shard = len(removed)

    pool = sorted(indexed)
    for start in range(0, count, DECIDE_BATCH):
        batch = np.array(
            [row for row in range(start, min(start + DECIDE_BATCH, count)) if row not in removed]
        )
        if not len(batch):
            continue
        queries = hashes.select(batch)
        prior: dict[int, tuple[float, int, int, int]] = {}
        if pool:
            pool_rows = np.array(pool)
            match = matcher.match(queries, hashes.select(pool_rows))
            for q, t, similarity, q_unit, t_unit in match_rows(match):
                prefer(prior, int(batch[q]), similarity, int(pool_rows[t]), q_unit, t_unit)
        within: dict[int, list[tuple[float, int, int, int]]] = {}
        match = matcher.match(queries, queries)
        for q, t, similarity, q_unit, t_unit in match_rows(match):
            if batch[t] < batch[q]:
                within.setdefault(int(batch[q]), []).append((similarity, int(batch[t]), q_unit, t_unit))
        indexed_here: list[int] = []
        for row in batch.tolist():
            for similarity, other, q_unit, t_unit in within.get(row, []):
                if other in indexed:
                    prefer(prior, row, similarity, other, q_unit, t_unit)
            choice = prior.get(row)
            if choice is None:
                indexed[row] = None
                indexed_here.append(row)
                continue
            similarity, other, q_unit, t_unit = choice
            kept_as = indexed[other]
            dup_of, via = (shard.ids[other], None) if kept_as is None else (kept_as, shard.ids[other])
            removed[row] = _decision(matcher, similarity, q_unit, t_unit, dup_of, via)
            if matcher.copies and via is None:
                indexed[row] = dup_of
                indexed_here.append(row)
        pool.extend(indexed_here)

    index = index_table(shard, sorted(indexed), schema, unit_column, indexed)
    return MediaOutcome(
        removed={shard.ids[row]: decision for row, decision in sorted(removed.items())},
        index=index,
        not_hashed=shard.not_hashed,
        cross_shard=cross_shard,
        checked=checked,
    )


def _other_shards(
    shard: ShardMedia, hashes: HashSet, matcher: MediaMatcher, earlier: EarlierMedia
) -> tuple[dict[int, MediaDecision], dict[int, str | None]]:
    """The rows that match another shard's indexed item, each with the best match, and the rows indexed
    before the shard's own pass (`indexed`: row -> None for a kept item, the kept item's id for a copy):
    here, the direct copies of other shards' kept items."""
    found = EarlierMatches()
    if shard.ids:
        for targets, target_ids in earlier.candidates(hashes):
            found.add(matcher.match(hashes, targets), target_ids, targets.via)
    best: dict[int, tuple[float, str, int, int, str | None]] = {}
    own = set(shard.ids)
    for row, other_id, similarity, q_unit, t_unit, via in zip(
        found.rows, found.ids, found.similarity, found.query_unit, found.target_unit, found.via, strict=True
    ):
        if other_id in own:  # another shard's copy of an item of this one: decided within the shard
            continue
        current = best.get(row)
        if current is None or _rank(similarity, other_id, via) < _rank(current[0], current[1], current[4]):
            best[row] = (similarity, other_id, q_unit, t_unit, via)
    removed: dict[int, MediaDecision] = {}
    indexed: dict[int, str | None] = {}
    for row, (similarity, other_id, q_unit, t_unit, via) in best.items():
        removed[row] = _decision(matcher, similarity, q_unit, t_unit, other_id, via)
        if matcher.copies and via is None:
            indexed[row] = other_id
    return removed, indexed


def _rank(similarity: float, other_id: str, via: str | None) -> tuple[float, str, bool, str]:
    """Order of preference among matches: most similar, then smallest id, then a kept item before a copy."""
    return -similarity, other_id, via is not None, via or ""


def _decision(
    matcher: MediaMatcher, similarity: float, q_unit: int, t_unit: int, dup_of: str, via: str | None
) -> MediaDecision:
    """Why an item is removed: as a duplicate of `dup_of`, directly or through `via`, its indexed copy."""
    if via is None:
        return MediaDecision(dup_of, similarity, matcher.describe(similarity, q_unit, t_unit, dup_of))
    detail = matcher.describe(similarity, q_unit, t_unit, via)
    return MediaDecision(dup_of, similarity, f"{detail}, a copy of {dup_of}")


def index_table(
    shard: ShardMedia,
    rows: Sequence[int],
    schema: pa.Schema,
    unit_column: str,
    copy_of: dict[int, str | None] | None = None,
) -> pa.Table:
    """The index rows (every hash of every item) of the items at `rows` of `shard`, in that order;
    `copy_of` names the kept item of the rows that are indexed copies."""
    chosen = shard.hash_set().select(np.array(rows, dtype=np.int64))
    columns: dict[str, pa.Array] = {
        "id": pa.DictionaryArray.from_arrays(
            pa.array(chosen.item.astype(np.int32), pa.int32()),
            pa.array([shard.ids[row] for row in rows], pa.string()),
        ),
        unit_column: pa.array(chosen.unit, schema.field(unit_column).type),
        "hash": pa.array(chosen.hash, pa.uint64()),
    }
    if "frames" in schema.names:
        columns["frames"] = pa.array(chosen.units[chosen.item], pa.int32())
    if "colour" in schema.names:
        assert chosen.colour is not None
        flat = pa.array(chosen.colour[chosen.item].reshape(-1), pa.float32())
        columns["colour"] = pa.FixedSizeListArray.from_arrays(flat, 3)
    if "copy_of" in schema.names:
        kept = [(copy_of or {}).get(row) for row in rows]
        names = sorted({name for name in kept if name is not None})
        position = {name: index for index, name in enumerate(names)}
        columns["copy_of"] = pa.DictionaryArray.from_arrays(
            pa.array(
                [
                    position.get(kept[item]) if kept[item] is not None else None
                    for item in chosen.item.tolist()
                ],
                pa.int32(),
            ),
            pa.array(names, pa.string()),
        )
    return pa.table(columns, schema=schema)


def match_rows(match: Match) -> Iterator[tuple[int, int, float, int, int]]:
    yield from zip(
        match.query.tolist(),
        match.target.tolist(),
        match.similarity.tolist(),
        match.query_unit.tolist(),
        match.target_unit.tolist(),
        strict=True,
    )


def prefer(
    best: dict[int, tuple[float, Other, int, int]],
    row: int,
    similarity: float,
    other: Other,
    q_unit: int,
    t_unit: int,
) -> None:
    """Keep the most similar match of `row`; on ties the earliest row (or smallest id) `other`."""
    current = best.get(row)
    if current is None or (-similarity, other) < (-current[0], current[1]):
        best[row] = (similarity, other, q_unit, t_unit)
