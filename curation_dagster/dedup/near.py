"""Near-duplicate decisions for one shard: clusters within the shard and links to earlier shards.

Earlier shards are reached only through their index (band keys and signatures), never their text. An
item of an earlier shard always wins over an item of this shard, and within the shard the earlier row
wins, so an item kept once is never removed later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.minhash import (
    EMPTY,
    cluster,
    has_shingles,
    passes,
    signatures,
    verified_similarity,
    word_signatures,
)
from curation_dagster.spec import NearDedupSpec

REJECT_NEAR = "dedup.near"

#: Band keys and signatures of one shard's near-dedup items, as stored in the lake.
BANDS_SCHEMA = pa.schema(
    [
        pa.field("band_key", pa.uint64(), nullable=False),
        pa.field("id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
)


def signatures_schema(settings: NearDedupSpec) -> pa.Schema:
    """Signatures are fixed-width binary cells holding the uint32 values, little-endian."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("root", pa.string(), nullable=False),
            pa.field("shingle_sig", pa.binary(4 * settings.num_perm), nullable=False),
            pa.field("word_sig", pa.binary(4 * settings.verify_hashes)),
        ]
    )


def _fixed_binary(matrix: np.ndarray | None, rows: int, width: int) -> pa.Array:
    """A `(rows, width)` uint32 matrix as fixed-width binary cells, without one Python object per row."""
    if matrix is None:
        return pa.nulls(rows, pa.binary(4 * width))
    data = np.ascontiguousarray(matrix, dtype="<u4")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 * width), rows, [None, pa.py_buffer(data.tobytes())]
    )


@dataclass
class EarlierItems:
    """Items of earlier shards that share a band with this shard's items: what the index returned."""

    rows: np.ndarray
    """For each candidate pair, the row of this shard."""
    positions: np.ndarray
    """For each candidate pair, the position of the earlier item in `ids`."""
    ids: list[str]
    roots: list[str]
    shingle_sigs: np.ndarray
    word_sigs: np.ndarray | None


#: Given this shard's band keys `(rows, bands)`, the earlier items sharing a band with them.
EarlierLookup = Callable[[np.ndarray], EarlierItems]


@dataclass
class NearDecision:
    """Why a row is removed: the id of its cluster's first item and their estimated similarity."""

    dup_of: str
    similarity: float


@dataclass
class ShardSignatures:
    """The signatures of a shard's text items, accumulated batch by batch."""

    settings: NearDedupSpec
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    shingle_parts: list[np.ndarray] = field(default_factory=list)
    word_parts: list[np.ndarray] = field(default_factory=list)

    def add(self, ids: list[str], texts: list[str]) -> None:
        self.ids.extend(ids)
        self.shingle_parts.append(signatures(texts, self.settings))
        if self.settings.verify == "word_jaccard":
            self.word_parts.append(word_signatures(texts, self.settings))

    def shingles(self) -> np.ndarray:
        if not self.shingle_parts:
            return np.zeros((0, self.settings.num_perm), dtype=np.uint32)
        return np.concatenate(self.shingle_parts)

    def words(self) -> np.ndarray | None:
        if self.settings.verify != "word_jaccard":
            return None
        if not self.word_parts:
            return np.zeros((0, self.settings.verify_hashes), dtype=np.uint32)
        return np.concatenate(self.word_parts)


@dataclass
class ShardOutcome:
    """Decisions for a shard plus what goes into the index and the metadata."""

    removed: dict[str, NearDecision]
    bands: pa.Table
    signatures: pa.Table
    cluster_sizes: Counter[int]
    cross_shard: int


class NearDedup:
    """Decides which text items of a shard are near duplicates, of each other or of earlier shards."""

    def __init__(self, settings: NearDedupSpec | None = None) -> None:
        self.settings = settings or NearDedupSpec()

    def decide(self, shard: ShardSignatures, earlier: EarlierLookup) -> ShardOutcome:
        """Cluster the shard's items (connected components of confirmed pairs) and link clusters to the
        earlier items they match; every member but the cluster's first item is removed."""
        settings = self.settings
        ids = shard.ids
        shingle_sigs, word_sigs = shard.shingles(), shard.words()
        clusters, keys = cluster(shingle_sigs, word_sigs, settings)
        usable = np.nonzero(has_shingles(shingle_sigs))[0]
        roots = clusters.roots()

        # Links to earlier shards: per cluster of this shard, the best confirmed earlier root.
        found = earlier(keys) if len(usable) else None
        best_earlier: dict[int, tuple[float, str]] = {}
        if found is not None and len(found.rows):
            rows = usable[found.rows]
            similarity = verified_similarity(
                rows, found.positions, shingle_sigs, word_sigs, settings, found.shingle_sigs, found.word_sigs
            )
            # An earlier item whose cluster root is one of this shard's own items (this shard came first
            # and is being run again) does not outrank that item.
            own = set(ids)
            foreign = np.array([found.roots[position] not in own for position in found.positions], dtype=bool)
            confirmed = passes(similarity, settings) & foreign
            for row, position, value in zip(
                rows[confirmed], found.positions[confirmed], similarity[confirmed], strict=True
            ):
                group, score, root = int(roots[row]), float(value), found.roots[position]
                current = best_earlier.get(group)
                if current is None or score > current[0] or (score == current[0] and root < current[1]):
                    best_earlier[group] = (score, root)

        # Every row's cluster root: the best earlier item its cluster matched, else its first row.
        earlier_index = {item: index for index, item in enumerate(found.ids)} if found is not None else {}
        root_ids: list[str] = []
        local_pairs: list[tuple[int, int]] = []
        earlier_pairs: list[tuple[int, int]] = []
        for row in range(len(ids)):
            group = int(roots[row])
            if group in best_earlier:
                root_id = best_earlier[group][1]
                earlier_pairs.append((row, earlier_index.get(root_id, -1)))
            else:
                root_id = ids[group]
                if group != row:
                    local_pairs.append((row, group))
            root_ids.append(root_id)

        removed: dict[str, NearDecision] = {}
        if local_pairs:
            pairs = np.array(local_pairs, dtype=np.int64)
            values = verified_similarity(pairs[:, 0], pairs[:, 1], shingle_sigs, word_sigs, settings)
            for (row, _), value in zip(local_pairs, values, strict=True):
                removed[ids[row]] = NearDecision(root_ids[row], float(value))
        if earlier_pairs and found is not None:
            pairs = np.array(earlier_pairs, dtype=np.int64)
            known = pairs[:, 1] >= 0
            values = np.zeros(len(pairs))
            values[known] = verified_similarity(
                pairs[known, 0],
                pairs[known, 1],
                shingle_sigs,
                word_sigs,
                settings,
                found.shingle_sigs,
                found.word_sigs,
            )
            for (row, position), value in zip(earlier_pairs, values, strict=True):
                score = float(value) if position >= 0 else best_earlier[int(roots[row])][0]
                removed[ids[row]] = NearDecision(root_ids[row], score)

        sizes = Counter(Counter(root_ids).values())
        sizes.pop(1, None)
        band_keys_kept, band_rows = _bucket_heads(keys, usable)
        bands = pa.table(
            {
                "band_key": pa.array(band_keys_kept, pa.uint64()),
                "id": pa.DictionaryArray.from_arrays(
                    pa.array(band_rows, pa.int32()), pa.array(ids, pa.string())
                ),
            },
            schema=BANDS_SCHEMA,
        )
        signature_table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "root": pa.array(root_ids, pa.string()),
                "shingle_sig": _fixed_binary(shingle_sigs, len(ids), self.settings.num_perm),
                "word_sig": _fixed_binary(word_sigs, len(ids), self.settings.verify_hashes),
            },
            schema=signatures_schema(self.settings),
        )
        own = set(ids)
        cross = sum(1 for decision in removed.values() if decision.dup_of not in own)
        return ShardOutcome(removed, bands, signature_table, sizes, cross)


def _earlier_root_signatures(found: EarlierItems) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    by_id: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for position, item in enumerate(found.ids):
        by_id[item] = (
            found.shingle_sigs[position],
            None if found.word_sigs is None else found.word_sigs[position],
        )
    return by_id


#: Items indexed per band key: later shards compare with the first few items of an old bucket only,
#: which keeps a boilerplate bucket from multiplying the cross-shard join.
INDEXED_PER_BUCKET = 4


def _bucket_heads(keys: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band keys and rows to index: per band, the first `INDEXED_PER_BUCKET` rows of each bucket."""
    all_keys: list[np.ndarray] = []
    all_rows: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        column = keys[:, band]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        index = np.arange(len(ordered))
        new_group = (
            np.concatenate(([True], ordered[1:] != ordered[:-1])) if len(ordered) else np.zeros(0, bool)
        )
        keep = (index - np.maximum.accumulate(np.where(new_group, index, 0))) < INDEXED_PER_BUCKET
        all_keys.append(ordered[keep])
        all_rows.append(usable[order[keep]])
    if not all_keys:
        return np.zeros(0, np.uint64), np.zeros(0, np.int32)
    return np.concatenate(all_keys), np.concatenate(all_rows).astype(np.int32)


def decode_signatures(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """Signature cells back into a `(rows, width)` uint32 array; missing cells become EMPTY."""
    out = np.full((len(column), width), EMPTY, dtype=np.uint32)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    start = 0
    for chunk in chunks:
        cells = chunk.cast(pa.binary(4 * width))
        valid = np.asarray(cells.is_valid())
        if len(cells) and valid.any():
            buffer = cells.buffers()[1]
            values = np.frombuffer(
                buffer, dtype="<u4", offset=cells.offset * 4 * width, count=len(cells) * width
            )
            out[start : start + len(cells)][valid] = values.reshape(len(cells), width)[valid]
        start += len(cells)
    return out
