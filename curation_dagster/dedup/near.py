"""Near-duplicate decisions for one shard: clusters within the shard and links to earlier shards.

Earlier shards are reached only through their index (band keys and signatures), never their text. An
item of an earlier shard always wins over an item of this shard, and within the shard the earlier row
wins, so an item kept once is never removed later. Per document the shard holds its band keys and the
signature `verify` compares (about 0.8 KB with the defaults), never its text, so memory follows the number
of documents, not their size.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.minhash import (
    EMPTY,
    band_keys,
    cluster,
    has_shingles,
    passes,
    shingle_and_verification_signatures,
    verified_similarity,
)
from curation_dagster.spec import NearDedupSpec

REJECT_NEAR = "dedup.near"
#: Parquet schema metadata key holding the fingerprint of the settings an index file was built with.
FINGERPRINT_KEY = b"curation.near_settings"
#: Items indexed per band key: later shards compare with the first few items of an old bucket only,
#: which keeps a boilerplate bucket from multiplying the cross-shard join.
INDEXED_PER_BUCKET = 4


def settings_fingerprint(settings: NearDedupSpec) -> str:
    """A hash of every setting that changes band keys or signatures: index files built with another
    fingerprint cannot be compared with this shard."""
    relevant = settings.model_dump(mode="json", exclude={"enabled", "min_similarity", "preset"})
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def bands_schema(settings: NearDedupSpec) -> pa.Schema:
    return pa.schema(
        [
            pa.field("band_key", pa.uint64(), nullable=False),
            pa.field("id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        ],
        metadata={FINGERPRINT_KEY: settings_fingerprint(settings).encode()},
    )


def signatures_schema(settings: NearDedupSpec) -> pa.Schema:
    """Verification signatures are fixed-width binary cells holding the uint32 values, little-endian."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("root", pa.string(), nullable=False),
            pa.field("sig", pa.binary(4 * verify_width(settings)), nullable=False),
        ],
        metadata={FINGERPRINT_KEY: settings_fingerprint(settings).encode()},
    )


def verify_width(settings: NearDedupSpec) -> int:
    """Values per verification signature."""
    return settings.verify_hashes if settings.verify == "word_jaccard" else settings.num_perm


@dataclass
class EarlierItems:
    """Items of earlier shards that share a band with this shard's items: what the index returned."""

    rows: np.ndarray
    """For each candidate pair, the position of this shard's item among the items with shingles."""
    positions: np.ndarray
    """For each candidate pair, the position of the earlier item in `ids`."""
    ids: list[str]
    roots: list[str]
    sigs: np.ndarray


#: Given this shard's band keys `(items with shingles, bands)`, the earlier items sharing a band.
EarlierLookup = Callable[[np.ndarray], EarlierItems]


@dataclass
class NearDecision:
    """Why a row is removed: the id of its cluster's first item and their estimated similarity."""

    dup_of: str
    similarity: float


@dataclass
class ShardSignatures:
    """Band keys and verification signatures of a shard's text items, filled batch by batch into
    arrays sized once for the shard (`capacity` rows)."""

    settings: NearDedupSpec
    capacity: int
    ids: list[str] = field(default_factory=list)
    _keys: np.ndarray = field(init=False)
    _sigs: np.ndarray = field(init=False)
    _usable: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._keys = np.zeros((self.capacity, self.settings.bands), dtype=np.uint64)
        self._sigs = np.zeros((self.capacity, verify_width(self.settings)), dtype=np.uint32)
        self._usable = np.zeros(self.capacity, dtype=bool)

    def add(self, ids: list[str], texts: list[str]) -> None:
        start, stop = len(self.ids), len(self.ids) + len(ids)
        if stop > self.capacity:
            raise ValueError(f"more items than the {self.capacity} this shard was sized for")
        shingle_sigs, verify_sigs = shingle_and_verification_signatures(texts, self.settings)
        self._keys[start:stop] = band_keys(shingle_sigs, self.settings.bands, self.settings.rows)
        self._sigs[start:stop] = verify_sigs
        self._usable[start:stop] = has_shingles(shingle_sigs)
        self.ids.extend(ids)

    @property
    def usable(self) -> np.ndarray:
        """Rows of documents that have shingles (the others never match)."""
        return np.nonzero(self._usable[: len(self.ids)])[0]

    @property
    def keys(self) -> np.ndarray:
        """Band keys of the usable rows (a view, not a copy, when every row is usable)."""
        count = len(self.ids)
        if self._usable[:count].all():
            return self._keys[:count]
        return self._keys[self.usable]

    @property
    def sigs(self) -> np.ndarray:
        return self._sigs[: len(self.ids)]


@dataclass
class ShardOutcome:
    """Decisions for a shard plus what goes into the index and the metadata."""

    removed: dict[str, NearDecision]
    bands: list[pa.Table]
    """One table per band, so they can be written one after the other without joining them in memory."""
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
        ids, sigs, usable, keys = shard.ids, shard.sigs, shard.usable, shard.keys
        roots = cluster(keys, usable, sigs, settings).roots()
        best_earlier, found = self._earlier_roots(ids, sigs, usable, keys, roots, earlier)

        # Every row's cluster root: the best earlier item its cluster matched, else its first row.
        earlier_index = {item: index for index, item in enumerate(found.ids)} if found is not None else {}
        root_ids: list[str] = []
        local_pairs: list[tuple[int, int]] = []
        earlier_pairs: list[tuple[int, int]] = []
        for row in range(len(ids)):
            group = int(roots[row])
            if group in best_earlier:
                root_ids.append(best_earlier[group][1])
                earlier_pairs.append((row, earlier_index.get(root_ids[-1], -1)))
            else:
                root_ids.append(ids[group])
                if group != row:
                    local_pairs.append((row, group))

        removed: dict[str, NearDecision] = {}
        if local_pairs:
            pairs = np.array(local_pairs, dtype=np.int64)
            values = verified_similarity(pairs[:, 0], pairs[:, 1], sigs)
            for (row, _), value in zip(local_pairs, values, strict=True):
                removed[ids[row]] = NearDecision(root_ids[row], float(value))
        if earlier_pairs and found is not None:
            pairs = np.array(earlier_pairs, dtype=np.int64)
            known = pairs[:, 1] >= 0
            values = np.zeros(len(pairs))
            values[known] = verified_similarity(pairs[known, 0], pairs[known, 1], sigs, found.sigs)
            for (row, position), value in zip(earlier_pairs, values, strict=True):
                score = float(value) if position >= 0 else best_earlier[int(roots[row])][0]
                removed[ids[row]] = NearDecision(root_ids[row], score)

        sizes = Counter(Counter(root_ids).values())
        sizes.pop(1, None)
        own = set(ids)
        return ShardOutcome(
            removed=removed,
            bands=self._bands_table(ids, usable, keys),
            signatures=pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "root": pa.array(root_ids, pa.string()),
                    "sig": _fixed_binary(sigs),
                },
                schema=signatures_schema(settings),
            ),
            cluster_sizes=sizes,
            cross_shard=sum(1 for decision in removed.values() if decision.dup_of not in own),
        )

    def _earlier_roots(
        self,
        ids: list[str],
        sigs: np.ndarray,
        usable: np.ndarray,
        keys: np.ndarray,
        roots: np.ndarray,
        earlier: EarlierLookup,
    ) -> tuple[dict[int, tuple[float, str]], EarlierItems | None]:
        """Per cluster of this shard, the best confirmed earlier root (highest similarity, then the
        smallest id), and what the index returned."""
        found = earlier(keys) if len(usable) else None
        best: dict[int, tuple[float, str]] = {}
        if found is None or not len(found.rows):
            return best, found
        rows = usable[found.rows]
        similarity = verified_similarity(rows, found.positions, sigs, found.sigs)
        # An earlier item whose cluster root is one of this shard's own items (this shard came first
        # and is being run again) does not outrank that item.
        own = set(ids)
        foreign = np.array([found.roots[position] not in own for position in found.positions], dtype=bool)
        confirmed = passes(similarity, self.settings) & foreign
        for row, position, value in zip(
            rows[confirmed], found.positions[confirmed], similarity[confirmed], strict=True
        ):
            group, score, root = int(roots[row]), float(value), found.roots[position]
            current = best.get(group)
            if current is None or score > current[0] or (score == current[0] and root < current[1]):
                best[group] = (score, root)
        return best, found

    def _bands_table(self, ids: list[str], usable: np.ndarray, keys: np.ndarray) -> list[pa.Table]:
        """Per band, the first `INDEXED_PER_BUCKET` rows of each bucket, as (band key, id) tables."""
        schema = bands_schema(self.settings)
        dictionary = pa.array(ids, pa.string())
        tables: list[pa.Table] = []
        for band in range(keys.shape[1]):
            column = keys[:, band]
            order = np.argsort(column, kind="stable")
            ordered = column[order]
            index = np.arange(len(ordered))
            new_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
            keep = (index - np.maximum.accumulate(np.where(new_group, index, 0))) < INDEXED_PER_BUCKET
            rows = usable[order[keep]].astype(np.int32)
            tables.append(
                pa.table(
                    {
                        "band_key": pa.array(ordered[keep], pa.uint64()),
                        "id": pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), dictionary),
                    },
                    schema=schema,
                )
            )
        return tables


def _fixed_binary(matrix: np.ndarray) -> pa.Array:
    """A uint32 matrix as fixed-width binary cells, without one Python object per row."""
    rows, width = matrix.shape
    data = np.ascontiguousarray(matrix, dtype="<u4")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 * width), rows, [None, pa.py_buffer(data.tobytes())]
    )


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
