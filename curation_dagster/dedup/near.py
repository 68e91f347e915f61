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
    UnionFind,
    band_keys,
    bucket_pairs,
    estimated_jaccard,
    has_shingles,
    signatures,
    word_signatures,
)
from curation_dagster.spec import NearDedupSpec

REJECT_NEAR = "dedup.near"

#: Band keys and signatures of one shard's near-dedup items, as stored in the lake.
BANDS_SCHEMA = pa.schema(
    [pa.field("band_key", pa.uint64(), nullable=False), pa.field("id", pa.string(), nullable=False)]
)
SIGNATURES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("root", pa.string(), nullable=False),
        pa.field("shingle_sig", pa.binary(), nullable=False),
        pa.field("word_sig", pa.binary()),
    ]
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

    def _similarity(
        self,
        shingle_a: np.ndarray,
        word_a: np.ndarray | None,
        shingle_b: np.ndarray,
        word_b: np.ndarray | None,
    ) -> np.ndarray:
        if self.settings.verify == "word_jaccard" and word_a is not None and word_b is not None:
            return estimated_jaccard(word_a, word_b)
        return estimated_jaccard(shingle_a, shingle_b)

    def _confirmed(self, similarity: np.ndarray) -> np.ndarray:
        if self.settings.verify == "none":
            return np.ones(len(similarity), dtype=bool)
        return similarity >= self.settings.min_similarity

    def decide(self, shard: ShardSignatures, earlier: EarlierLookup) -> ShardOutcome:
        """Cluster the shard's items (connected components of confirmed pairs) and link clusters to the
        earlier items they match; every member but the cluster's first item is removed."""
        ids = shard.ids
        shingle_sigs, word_sigs = shard.shingles(), shard.words()
        usable = np.nonzero(has_shingles(shingle_sigs))[0]
        keys = band_keys(shingle_sigs[usable], self.settings.bands, self.settings.rows)
        clusters = UnionFind(len(ids))
        pairs = usable[bucket_pairs(keys)] if len(usable) else np.zeros((0, 2), dtype=np.int64)
        if len(pairs):
            left, right = pairs[:, 0], pairs[:, 1]
            similarity = self._similarity(
                shingle_sigs[left],
                None if word_sigs is None else word_sigs[left],
                shingle_sigs[right],
                None if word_sigs is None else word_sigs[right],
            )
            for first, second in pairs[self._confirmed(similarity)]:
                clusters.union(int(first), int(second))
        roots = np.array([clusters.find(row) for row in range(len(ids))], dtype=np.int64)

        # Links to earlier shards: the best confirmed earlier root per cluster of this shard.
        found = earlier(keys) if len(usable) else None
        best_earlier: dict[int, tuple[float, str]] = {}
        if found is not None and len(found.rows):
            rows = usable[found.rows]
            similarity = self._similarity(
                shingle_sigs[rows],
                None if word_sigs is None else word_sigs[rows],
                found.shingle_sigs[found.positions],
                None if found.word_sigs is None else found.word_sigs[found.positions],
            )
            for row, position, value in zip(rows, found.positions, similarity, strict=True):
                if not (self.settings.verify == "none" or value >= self.settings.min_similarity):
                    continue
                cluster = int(roots[row])
                score, root = float(value), found.roots[position]
                current = best_earlier.get(cluster)
                if current is None or score > current[0] or (score == current[0] and root < current[1]):
                    best_earlier[cluster] = (score, root)
        earlier_sigs = _earlier_root_signatures(found) if found is not None else {}

        removed: dict[str, NearDecision] = {}
        root_ids: list[str] = []
        for row, item in enumerate(ids):
            cluster = int(roots[row])
            if cluster in best_earlier:
                root_id = best_earlier[cluster][1]
                root_shingle, root_word = earlier_sigs.get(root_id, (None, None))
            else:
                root_id = ids[cluster]
                root_shingle = shingle_sigs[cluster]
                root_word = None if word_sigs is None else word_sigs[cluster]
            root_ids.append(root_id)
            if root_id == item:
                continue
            if root_shingle is None:
                value = best_earlier[cluster][0]
            else:
                value = float(
                    self._similarity(
                        shingle_sigs[row],
                        None if word_sigs is None else word_sigs[row],
                        root_shingle,
                        root_word,
                    )
                )
            removed[item] = NearDecision(root_id, value)

        sizes = Counter(Counter(root_ids).values())
        sizes.pop(1, None)
        band_rows = np.repeat(usable, self.settings.bands)
        bands = pa.table(
            {
                "band_key": pa.array(keys.reshape(-1), pa.uint64()),
                "id": pa.array([ids[row] for row in band_rows], pa.string()),
            },
            schema=BANDS_SCHEMA,
        )
        signature_table = pa.table(
            {
                "id": ids,
                "root": root_ids,
                "shingle_sig": [shingle_sigs[row].tobytes() for row in range(len(ids))],
                "word_sig": [
                    None if word_sigs is None else word_sigs[row].tobytes() for row in range(len(ids))
                ],
            },
            schema=SIGNATURES_SCHEMA,
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


def decode_signatures(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """Binary signature cells back into a `(rows, width)` uint32 array; missing cells become EMPTY."""
    values = column.to_pylist()
    out = np.full((len(values), width), EMPTY, dtype=np.uint32)
    for row, value in enumerate(values):
        if value is not None:
            out[row] = np.frombuffer(value, dtype=np.uint32)
    return out
