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
from curation_dagster.spec import NearDedupSettings

REJECT_NEAR = "dedup.near"
#: Parquet schema metadata key holding the fingerprint of the settings an index file was built with.
FINGERPRINT_KEY = b"curation.near_settings"
#: Items indexed per band key: later shards compare with the first few items of an old bucket only,
#: which keeps a boilerplate bucket from multiplying the cross-shard join.
INDEXED_PER_BUCKET = 4


def settings_fingerprint(settings: NearDedupSettings) -> str:
    """A hash of every setting that changes band keys or signatures: index files built with another
    fingerprint cannot be compared with this shard."""
    relevant = settings.model_dump(mode="json", exclude={"enabled", "min_similarity", "preset"})
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def signatures_schema(settings: NearDedupSettings) -> pa.Schema:
    """One row per text item of the shard, in the shard's order (the band keys point at these rows):
    its cluster's root item and where that lives, and the verification signature as a fixed-width
    binary cell holding the uint32 values, little-endian."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("root", pa.string(), nullable=False),
            pa.field("root_shard", pa.string(), nullable=False),
            pa.field("root_row", pa.int64(), nullable=False),
            pa.field("sig", pa.binary(4 * verify_width(settings)), nullable=False),
        ],
        metadata={FINGERPRINT_KEY: settings_fingerprint(settings).encode()},
    )


def verify_width(settings: NearDedupSettings) -> int:
    """Values per verification signature."""
    return settings.verify_hashes if settings.verify == "word_jaccard" else settings.num_perm


@dataclass
class EarlierItems:
    """Items of earlier shards that share a band with this shard's items (and their clusters' roots):
    what the index returned, each with where it lives and where its root lives."""

    rows: np.ndarray
    """For each candidate pair, the position of this shard's item among the items with shingles."""
    positions: np.ndarray
    """For each candidate pair, the position of the earlier item in `ids`."""
    ids: list[str]
    roots: list[str]
    sigs: np.ndarray
    root_locations: list[tuple[str, int]] = field(default_factory=list)
    """Per item of `ids`, the shard and row of its cluster's root."""


#: Given this shard's band keys `(items with shingles, bands)`, the earlier items sharing a band.
EarlierLookup = Callable[[np.ndarray], EarlierItems]


@dataclass
class NearDecision:
    """Why a row is removed: the id of its cluster's first item, their estimated similarity, and the
    shard that holds the first item."""

    dup_of: str
    similarity: float
    shard: str = ""


@dataclass
class ShardSignatures:
    """Band keys and verification signatures of a shard's text items, filled batch by batch into
    arrays sized once for the shard (`capacity` rows)."""

    settings: NearDedupSettings
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

    def without(self, removed: set[str]) -> ShardSignatures:
        """These signatures but those of `removed` items (another dedup step removed them after signing),
        in the same order, sized to what is left."""
        if not removed.intersection(self.ids):
            return self
        count = len(self.ids)
        keep = np.array([item not in removed for item in self.ids], dtype=bool)
        kept = ShardSignatures(self.settings, capacity=int(keep.sum()))
        kept._keys[:] = self._keys[:count][keep]
        kept._sigs[:] = self._sigs[:count][keep]
        kept._usable[:] = self._usable[:count][keep]
        kept.ids = [item for item, stays in zip(self.ids, keep.tolist(), strict=True) if stays]
        return kept

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
    band_keys: np.ndarray
    """The band keys that go into the index: per band, the first `INDEXED_PER_BUCKET` items of a bucket."""
    band_rows: np.ndarray
    """For each of `band_keys`, the row of its item in `signatures`."""
    signatures: pa.Table
    cluster_sizes: Counter[int]
    cross_shard: int


class NearDedup:
    """Decides which text items of a shard are near duplicates, of each other or of earlier shards."""

    def __init__(self, settings: NearDedupSettings | None = None) -> None:
        self.settings = settings or NearDedupSettings()

    def decide(self, shard: ShardSignatures, earlier: EarlierLookup, name: str = "") -> ShardOutcome:
        """Cluster the shard's items (connected components of confirmed pairs) and link clusters to the
        earlier items they match; every member but the cluster's first item is removed. `name` is the
        shard's name, recorded as the location of the roots it holds."""
        settings = self.settings
        ids, sigs, usable, keys = shard.ids, shard.sigs, shard.usable, shard.keys
        roots = cluster(keys, usable, sigs, settings).roots()
        best_earlier, found = self._earlier_roots(ids, sigs, usable, keys, roots, earlier)

        # Every row's cluster root: the best earlier item its cluster matched, else its first row.
        earlier_index = {item: index for index, item in enumerate(found.ids)} if found is not None else {}
        root_ids: list[str] = []
        root_locations: list[tuple[str, int]] = []
        local_pairs: list[tuple[int, int]] = []
        earlier_pairs: list[tuple[int, int]] = []
        for row in range(len(ids)):
            group = int(roots[row])
            if group in best_earlier:
                _, root, location = best_earlier[group]
                root_ids.append(root)
                root_locations.append(location)
                earlier_pairs.append((row, earlier_index.get(root, -1)))
            else:
                root_ids.append(ids[group])
                root_locations.append((name, group))
                if group != row:
                    local_pairs.append((row, group))

        removed: dict[str, NearDecision] = {}
        if local_pairs:
            pairs = np.array(local_pairs, dtype=np.int64)
            values = verified_similarity(pairs[:, 0], pairs[:, 1], sigs)
            for (row, _), value in zip(local_pairs, values, strict=True):
                removed[ids[row]] = NearDecision(root_ids[row], float(value), name)
        if earlier_pairs and found is not None:
            pairs = np.array(earlier_pairs, dtype=np.int64)
            known = pairs[:, 1] >= 0
            values = np.zeros(len(pairs))
            values[known] = verified_similarity(pairs[known, 0], pairs[known, 1], sigs, found.sigs)
            for (row, position), value in zip(earlier_pairs, values, strict=True):
                score = float(value) if position >= 0 else best_earlier[int(roots[row])][0]
                removed[ids[row]] = NearDecision(root_ids[row], score, root_locations[row][0])

        sizes = Counter(Counter(root_ids).values())
        sizes.pop(1, None)
        own = set(ids)
        indexed_keys, indexed_rows = indexed_bands(usable, keys)
        return ShardOutcome(
            removed=removed,
            band_keys=indexed_keys,
            band_rows=indexed_rows,
            signatures=pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "root": pa.array(root_ids, pa.string()),
                    "root_shard": pa.array([location[0] for location in root_locations], pa.string()),
                    "root_row": pa.array([location[1] for location in root_locations], pa.int64()),
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
    ) -> tuple[dict[int, tuple[float, str, tuple[str, int]]], EarlierItems | None]:
        """Per cluster of this shard, the best confirmed earlier root (highest similarity, then the
        smallest id) and its location, and what the index returned."""
        found = earlier(keys) if len(usable) else None
        best: dict[int, tuple[float, str, tuple[str, int]]] = {}
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
                best[group] = (score, root, found.root_locations[position])
        return best, found


def indexed_bands(usable: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the first `INDEXED_PER_BUCKET` rows of each bucket: their keys and their rows (`usable`
    maps the rows of `keys` to rows of the shard)."""
    out_keys: list[np.ndarray] = []
    out_rows: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        column = keys[:, band]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        index = np.arange(len(ordered))
        new_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
        keep = (index - np.maximum.accumulate(np.where(new_group, index, 0))) < INDEXED_PER_BUCKET
        out_keys.append(ordered[keep])
        out_rows.append(usable[order[keep]])
    if not out_keys:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(out_keys), np.concatenate(out_rows)


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
