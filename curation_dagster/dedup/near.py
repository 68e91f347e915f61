"""Near-duplicate decisions for one shard: clusters within the shard and links to earlier shards.

Earlier shards are reached only through their index (band keys, signatures and word sketches), never their
text. An item of an earlier shard always wins over an item of this shard, and within the shard the earlier
row wins, so an item kept once is never removed later. Per document the shard holds in memory its band
keys and the signature `verify` estimates with (about 0.5 KB each with the defaults), never its text, so
memory follows the number of documents, not their size; its word and word-pair sketches (up to 2 and 4 KB,
about 1.5 KB on web text) wait on local disk (`sketch_spill.py`) for the pairs measured on them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.minhash import (
    EMPTY,
    NearMisses,
    Signed,
    band_keys,
    cluster,
    confirm,
    dedup_signatures,
    has_shingles,
)
from curation_dagster.dedup.range_sort import first_in_runs, key_ranges, trimmed
from curation_dagster.dedup.sketch_spill import SketchSpill
from curation_dagster.dedup.word_sketch import MEASURES, WordSketches
from curation_dagster.spec import NearDedupSettings

REJECT_NEAR = "dedup.near"
#: Parquet schema metadata key holding the fingerprint of the settings an index file was built with.
FINGERPRINT_KEY = b"curation.near_settings"
#: The layout of the index, part of its fingerprint: 2 added each item's word sketch (earlier indexes
#: cannot confirm grey-zone pairs and are refused), 3 its word-pair sketch.
INDEX_FORMAT = 3
#: Near misses shown in the metadata, per shard.
NEAR_MISS_EXAMPLES = 5
#: Items indexed per band key: later shards compare with the first few items of an old bucket only,
#: which keeps a boilerplate bucket from multiplying the cross-shard join.
INDEXED_PER_BUCKET = 4


def settings_fingerprint(settings: NearDedupSettings) -> str:
    """A hash of every setting that changes band keys or signatures: index files built with another
    fingerprint cannot be compared with this shard."""
    relevant = settings.model_dump(
        mode="json", exclude={"enabled", "min_similarity", "min_pair_similarity", "preset"}
    )
    relevant["index_format"] = INDEX_FORMAT
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def sketchless_fingerprint(settings: NearDedupSettings) -> str:
    """The fingerprint an index of these settings had before word sketches (index format 1)."""
    relevant = settings.model_dump(
        mode="json",
        exclude={"enabled", "min_similarity", "preset", "word_sketch", "min_pair_similarity", "pair_sketch"},
    )
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def signatures_schema(settings: NearDedupSettings) -> pa.Schema:
    """One row per text item of the shard, in the shard's order (the band keys point at these rows):
    its cluster's root item and where that lives, the verification signature as a fixed-width binary
    cell holding the uint32 values, little-endian, its word sketch (`word_sketch.py`: the number of
    distinct words and their smallest hashes, ascending; empty when sketches are off) and its word-pair
    sketch the same way."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("root", pa.string(), nullable=False),
            pa.field("root_shard", pa.string(), nullable=False),
            pa.field("root_row", pa.int64(), nullable=False),
            pa.field("sig", pa.binary(4 * verify_width(settings)), nullable=False),
            pa.field("words", pa.int32(), nullable=False),
            pa.field("word_sketch", pa.list_(pa.uint32()), nullable=False),
            pa.field("pairs", pa.int32(), nullable=False),
            pa.field("pair_sketch", pa.list_(pa.uint32()), nullable=False),
        ],
        metadata={FINGERPRINT_KEY: settings_fingerprint(settings).encode()},
    )


def signature_columns_schema(settings: NearDedupSettings) -> pa.Schema:
    """`signatures_schema` without the sketch columns: what `ShardOutcome.signatures` holds in memory."""
    schema = signatures_schema(settings)
    return pa.schema([schema.field(name) for name in ("id", "root", "root_shard", "root_row", "sig")])


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
    sketches: WordSketches | None = None
    """Per item of `ids`, its word sketch."""
    locations: list[tuple[str, int]] = field(default_factory=list)
    """Per item of `ids`, its own shard and row."""

    @property
    def signed(self) -> Signed:
        return Signed(self.sigs, self.sketches)


#: Given this shard's band keys `(items with shingles, bands)`, the earlier items sharing a band.
EarlierLookup = Callable[[np.ndarray], EarlierItems]


@dataclass
class NearDecision:
    """Why a row is removed: the id of its cluster's first item, their similarity, the shard that holds
    the first item, and the measure of the similarity (`word_sketch.MEASURES`). A near miss names the
    item it came closest to under the cut the same way."""

    dup_of: str
    similarity: float
    shard: str = ""
    measure: str = MEASURES[0]


@dataclass
class ShardSignatures:
    """Band keys, verification signatures and word sketches of a shard's text items, filled batch by
    batch: keys and signatures into arrays sized once for the shard (`capacity` rows), sketches (of
    varying length, the largest part) onto local disk (`SketchSpill`)."""

    settings: NearDedupSettings
    capacity: int
    ids: list[str] = field(default_factory=list)
    _keys: np.ndarray = field(init=False)
    _sigs: np.ndarray = field(init=False)
    _usable: np.ndarray = field(init=False)
    spill: SketchSpill = field(init=False, default_factory=SketchSpill)
    _mapped: WordSketches | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._keys = np.zeros((self.capacity, self.settings.bands), dtype=np.uint64)
        self._sigs = np.zeros((self.capacity, verify_width(self.settings)), dtype=np.uint32)
        self._usable = np.zeros(self.capacity, dtype=bool)

    def add(self, ids: list[str], texts: list[str]) -> None:
        start, stop = len(self.ids), len(self.ids) + len(ids)
        if stop > self.capacity:
            raise ValueError(f"more items than the {self.capacity} this shard was sized for")
        signed = dedup_signatures(texts, self.settings)
        self._keys[start:stop] = band_keys(signed.shingles, self.settings.bands, self.settings.rows)
        self._sigs[start:stop] = signed.verify
        self._usable[start:stop] = has_shingles(signed.shingles)
        sketches = signed.sketches or WordSketches.empty(len(ids))
        self.spill.append(sketches.with_pairs(sketches.pairs or WordSketches.empty(len(ids))))
        self.ids.extend(ids)

    def without(self, removed: set[str]) -> ShardSignatures:
        """These signatures but those of `removed` items (another dedup step removed them after signing),
        in the same order, sized to what is left; the sketches are copied on disk and this spill's
        folder goes, so only the result is used afterwards."""
        if not removed.intersection(self.ids):
            return self
        count = len(self.ids)
        keep = np.array([item not in removed for item in self.ids], dtype=bool)
        kept = ShardSignatures(self.settings, capacity=int(keep.sum()))
        kept._keys[:] = self._keys[:count][keep]
        kept._sigs[:] = self._sigs[:count][keep]
        kept._usable[:] = self._usable[:count][keep]
        kept.spill.close()
        kept.spill = self.spill.take(keep)
        kept.ids = [item for item, stays in zip(self.ids, keep.tolist(), strict=True) if stays]
        self.spill.close()
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

    @property
    def sketches(self) -> WordSketches:
        """Every row's word sketch, memory-mapped from the spill (mapped once, on first use)."""
        if self._mapped is None:
            self._mapped = self.spill.sketches()
        return self._mapped


@dataclass
class ShardBands:
    """A shard's band keys, `(documents with shingles, bands)`, and the row in the signatures of each of
    those documents (`usable`). What goes into the index (`indexed`) is worked out when the index is
    written, after the signatures, so that the two are never held together."""

    usable: np.ndarray
    keys: np.ndarray

    def indexed(self) -> tuple[np.ndarray, np.ndarray]:
        """The index's band keys and rows (`indexed_bands`): the first items of each bucket, sorted."""
        return indexed_bands(self.usable, self.keys)


@dataclass
class ShardOutcome:
    """Decisions for a shard plus what goes into the index and the metadata."""

    removed: dict[str, NearDecision]
    bands: ShardBands
    """The band keys of the shard's documents; let go once `NearIndex.write` indexed them."""
    signatures: pa.Table
    """The index's rows of the shard (`signatures_schema`) but their sketch columns; emptied once
    `NearIndex.write` wrote them."""
    sketches: WordSketches | SketchSpill
    """The same rows' word and word-pair sketches, in memory or on disk; let go once written."""
    cluster_sizes: Counter[int]
    cross_shard: int
    near_misses: dict[str, NearDecision] = field(default_factory=dict)
    """A few items of this shard that came within `minhash.NEAR_MISS` under the cut of an item of
    another cluster (the closest of them), for the metadata."""
    near_miss_pairs: int = 0
    """How many such pairs there were in all."""


class NearDedup:
    """Decides which text items of a shard are near duplicates, of each other or of earlier shards."""

    def __init__(self, settings: NearDedupSettings | None = None) -> None:
        self.settings = settings or NearDedupSettings()

    def decide(self, shard: ShardSignatures, earlier: EarlierLookup, name: str = "") -> ShardOutcome:
        """Cluster the shard's items (connected components of confirmed pairs) and link clusters to the
        earlier items they match; every member but the cluster's first item is removed. `name` is the
        shard's name, recorded as the location of the roots it holds."""
        settings = self.settings
        ids, usable, keys = shard.ids, shard.usable, shard.keys
        own = Signed(shard.sigs, shard.sketches)
        local_misses, earlier_misses = NearMisses(), NearMisses()
        roots = cluster(keys, usable, own, settings, local_misses).roots()
        best_earlier, found = self._earlier_roots(ids, own, usable, keys, roots, earlier, earlier_misses)

        # Every row's cluster root: the best earlier item its cluster matched, else its first row.
        earlier_index = {item: index for index, item in enumerate(found.ids)} if found is not None else {}
        root_ids: list[str] = []
        root_locations: list[tuple[str, int]] = []
        local_pairs: list[tuple[int, int]] = []
        earlier_pairs: list[tuple[int, int]] = []
        for row in range(len(ids)):
            group = int(roots[row])
            if group in best_earlier:
                _, root, location, _ = best_earlier[group]
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
            measured = confirm(pairs[:, 0], pairs[:, 1], settings, own)
            for index, (row, _) in enumerate(local_pairs):
                removed[ids[row]] = NearDecision(
                    root_ids[row], float(measured.similarity[index]), name, MEASURES[measured.measure[index]]
                )
        if earlier_pairs and found is not None:
            pairs = np.array(earlier_pairs, dtype=np.int64)
            known = np.flatnonzero(pairs[:, 1] >= 0)
            measured = confirm(pairs[known, 0], pairs[known, 1], settings, own, found.signed)
            by_pair = dict(zip(known.tolist(), range(len(known)), strict=True))
            for index, (row, _) in enumerate(earlier_pairs):
                score, _, location, measure = best_earlier[int(roots[row])]
                if index in by_pair:
                    score = float(measured.similarity[by_pair[index]])
                    measure = MEASURES[measured.measure[by_pair[index]]]
                removed[ids[row]] = NearDecision(root_ids[row], score, location[0], measure)

        sizes = Counter(Counter(root_ids).values())
        sizes.pop(1, None)
        own_ids = set(ids)
        misses, miss_count = self._near_misses(ids, root_ids, name, local_misses, earlier_misses, found)
        return ShardOutcome(
            removed=removed,
            bands=ShardBands(usable, keys),
            signatures=pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "root": pa.array(root_ids, pa.string()),
                    "root_shard": pa.array([location[0] for location in root_locations], pa.string()),
                    "root_row": pa.array([location[1] for location in root_locations], pa.int64()),
                    "sig": _fixed_binary(shard.sigs),
                },
                schema=signature_columns_schema(settings),
            ),
            sketches=shard.spill,
            cluster_sizes=sizes,
            cross_shard=sum(1 for decision in removed.values() if decision.dup_of not in own_ids),
            near_misses=misses,
            near_miss_pairs=miss_count,
        )

    def _earlier_roots(
        self,
        ids: list[str],
        own: Signed,
        usable: np.ndarray,
        keys: np.ndarray,
        roots: np.ndarray,
        earlier: EarlierLookup,
        near_misses: NearMisses,
    ) -> tuple[dict[int, tuple[float, str, tuple[str, int], str]], EarlierItems | None]:
        """Per cluster of this shard, the best confirmed earlier root (highest similarity, then the
        smallest id), its location and the measure of the similarity, and what the index returned."""
        found = earlier(keys) if len(usable) else None
        best: dict[int, tuple[float, str, tuple[str, int], str]] = {}
        if found is None or not len(found.rows):
            return best, found
        rows = usable[found.rows]
        measured = confirm(rows, found.positions, self.settings, own, found.signed)
        near_misses.add(rows, found.positions, measured, self.settings)
        # An earlier item whose cluster root is one of this shard's own items (this shard came first
        # and is being run again) does not outrank that item.
        own_ids = set(ids)
        foreign = np.array([found.roots[position] not in own_ids for position in found.positions], dtype=bool)
        confirmed = np.flatnonzero(measured.confirmed & foreign)
        for index in confirmed.tolist():
            row, position = int(rows[index]), int(found.positions[index])
            group, score, root = int(roots[row]), float(measured.similarity[index]), found.roots[position]
            current = best.get(group)
            if current is None or score > current[0] or (score == current[0] and root < current[1]):
                best[group] = (score, root, found.root_locations[position], MEASURES[measured.measure[index]])
        return best, found

    def _near_misses(
        self,
        ids: list[str],
        root_ids: list[str],
        name: str,
        local: NearMisses,
        earlier: NearMisses,
        found: EarlierItems | None,
    ) -> tuple[dict[str, NearDecision], int]:
        """The near misses between items that ended in different clusters: the closest partner of the
        first `NEAR_MISS_EXAMPLES` items (in row order), and how many such pairs there were."""
        candidates: list[tuple[int, float, str, str, str]] = []
        left, right, similarity, measure = local.pairs()
        for first, second, value, code in zip(
            left.tolist(), right.tolist(), similarity, measure, strict=True
        ):
            if root_ids[first] != root_ids[second]:
                candidates.append((second, float(value), ids[first], name, MEASURES[code]))
        if found is not None:
            left, right, similarity, measure = earlier.pairs()
            for row, position, value, code in zip(
                left.tolist(), right.tolist(), similarity, measure, strict=True
            ):
                other_root = found.roots[position]
                if root_ids[row] not in (other_root, found.ids[position]):
                    shard = found.locations[position][0] if found.locations else ""
                    candidates.append((row, float(value), found.ids[position], shard, MEASURES[code]))
        closest: dict[int, tuple[float, str, str, str]] = {}
        for row, value, other, shard, code in candidates:
            if row not in closest or value > closest[row][0]:
                closest[row] = (value, other, shard, code)
        chosen = sorted(closest)[:NEAR_MISS_EXAMPLES]
        return {
            ids[row]: NearDecision(closest[row][1], closest[row][0], closest[row][2], closest[row][3])
            for row in chosen
        }, len(candidates)


def signature_batches(outcome: ShardOutcome, schema: pa.Schema, rows: int) -> Iterator[pa.RecordBatch]:
    """The shard's index rows (`signatures_schema`) in record batches of `rows`, each batch's sketches
    read as it is made, so a spilled shard's sketches are never all in memory."""
    table = outcome.signatures
    for start in range(0, table.num_rows, rows):
        stop = min(start + rows, table.num_rows)
        part = table.slice(start, stop - start)
        columns = {name: part.column(name).combine_chunks() for name in part.column_names}
        yield pa.record_batch({**columns, **outcome.sketches.slice(start, stop).columns()}, schema=schema)


def indexed_bands(usable: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first `INDEXED_PER_BUCKET` rows of each bucket (band key), sorted by key, then row: their keys
    and their rows (uint32; `usable` maps the rows of `keys` to rows of the shard). Worked out a range of
    the key space at a time (`range_sort.key_ranges`), into arrays sized once, so memory holds the shard's
    keys, the result and one range's temporaries."""
    flat = keys.reshape(-1)
    out_keys = np.empty(len(flat), dtype=np.uint64)
    out_rows = np.empty(len(flat), dtype=np.uint32)
    filled, bands = 0, max(keys.shape[1], 1) if keys.ndim == 2 else 1
    for chosen in key_ranges(flat):
        part_keys, part_rows = flat[chosen], usable[chosen // bands].astype(np.uint32)
        order = np.lexsort((part_rows, part_keys))
        part_keys, part_rows = part_keys[order], part_rows[order]
        keep = first_in_runs(part_keys, INDEXED_PER_BUCKET)
        count = int(keep.sum())
        out_keys[filled : filled + count] = part_keys[keep]
        out_rows[filled : filled + count] = part_rows[keep]
        filled += count
    return trimmed(out_keys, filled), trimmed(out_rows, filled)


def _fixed_binary(matrix: np.ndarray) -> pa.Array:
    """A uint32 matrix as fixed-width binary cells, without one Python object per row (nor a copy of a
    contiguous little-endian matrix: the cells are its memory)."""
    rows, width = matrix.shape
    data = np.ascontiguousarray(matrix, dtype="<u4")
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * width), rows, [None, pa.py_buffer(data)])


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
